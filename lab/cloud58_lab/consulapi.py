"""Consul's HTTPS API over the unix socket of a server the tests started (nothing on the
network is addressed), the server's certificate checked against the test's CA."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from pathlib import Path


class UnixHTTPSConnection(http.client.HTTPConnection):
    """HTTPS over a unix socket, the server checked against the CA and ``server_name``."""

    def __init__(self, path: Path, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__("consul", timeout=60)
        self._path, self._context, self._server_name = str(path), context, server_name

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(self._path)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)


def request(
    socket_path: Path,
    context: ssl.SSLContext,
    server_name: str,
    method: str,
    path: str,
    *,
    body=None,
    token: str = "",
):
    """``(status, headers, decoded JSON or text)`` of one request; ``token`` as X-Consul-Token."""
    conn = UnixHTTPSConnection(socket_path, context, server_name)
    headers = {"X-Consul-Token": token} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read().decode()
    finally:
        conn.close()
    try:
        value = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        value = raw.strip()
    return resp.status, resp.headers, value
