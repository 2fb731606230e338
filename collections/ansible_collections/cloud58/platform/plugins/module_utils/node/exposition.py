# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The node agents' ``/metrics``: Prometheus text exposition (format 0.0.4) and its server.

``family(name, kind, help_text, samples)`` lays out one metric family: its ``# HELP`` and
``# TYPE`` lines, then one line per ``(labels, value)`` sample in the order given (the caller
sorts, so the same state gives the same text). ``labels`` escapes label values as the format
asks (backslash, double quote, newline). ``serve`` answers ``GET /metrics`` with what a
function returns at that moment, from a daemon thread, so an agent's own loop stays as it is.
Only ``serve`` does I/O.
"""

from __future__ import annotations

import http.server
import socket
import threading

CONTENT_TYPE = "text/plain; version=0.0.4"
KINDS = ("counter", "gauge")


class ListenError(ValueError):
    """The metrics address or port cannot be used; the message names it."""


def label_value(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs) -> str:
    """``{k="v",...}`` in the order given; ``""`` without labels."""
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{label_value(v)}"' for k, v in pairs.items()) + "}"


def _number(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def family(name: str, kind: str, help_text: str, samples) -> list[str]:
    """The lines of one family; ``samples`` is a list of ``(labels dict, value)``."""
    if kind not in KINDS:
        raise ValueError(f"metric {name}: kind {kind!r} is not one of {', '.join(KINDS)}")
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels(**pairs)} {_number(value)}" for pairs, value in samples]
    return lines


def text(families) -> str:
    """The exposition of several families (each a list of lines from :func:`family`)."""
    return "\n".join(line for lines in families for line in lines) + "\n"


def serve(address: str, port: int, render) -> tuple[str, int]:
    """Serve ``GET /metrics`` (the text ``render()`` returns) on ``address:port`` in a daemon thread.

    Port 0 takes any free port. Returns the address and port bound. A port out of range, or an
    address and port that cannot be bound, raise ListenError before any thread starts.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ListenError(f"port {port!r} is not a port number (0 to 65535)")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/metrics":
                self.send_error(404, "Not Found", "the one path is /metrics")
                return
            body = render().encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass  # a scrape every 15 s: no access log

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

    try:
        server = Server((address, port), Handler)
    except OSError as e:
        raise ListenError(f"cannot listen on {address} port {port}: {e.strerror or e}") from None
    host, bound = server.server_address[:2]
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return host, bound
