"""The operator's mirror, for the lab and the tests: pinned binaries served over HTTP.

Production installs take a program's version, URL and sha256 from inventory variables that
point at the operator's mirror (Consul, for one). The lab serves the binaries ``make setup``
built the same way: a threaded HTTP server on an address the hosts reach (the datacenter
network's gateway on this machine, or loopback for a test on this machine), each file under
its own name, with its sha256 for the inventory. Stopped by :meth:`Mirror.close`.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

__all__ = ["Mirror"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        return


class Mirror:
    """``files`` ({name: path}) linked into ``directory`` and served on ``address``."""

    def __init__(self, directory: Path, files: dict, address: str = "127.0.0.1") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.sha256 = {}
        for name, path in files.items():
            link = directory / name
            link.unlink(missing_ok=True)
            link.symlink_to(Path(path).resolve())
            self.sha256[name] = hashlib.sha256(link.read_bytes()).hexdigest()
        self._server = http.server.ThreadingHTTPServer(
            (address, 0), functools.partial(_QuietHandler, directory=str(directory))
        )
        host = f"[{address}]" if ":" in address else address
        self.base = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
