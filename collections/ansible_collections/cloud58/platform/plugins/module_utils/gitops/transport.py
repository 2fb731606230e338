# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""HTTP/1.1 over kept-alive TLS connections to one API server: the engine's hot path.

The kubeconfig is still read by the kubernetes client (contexts, exec plugins, embedded
certificates); only the requests go through here. The reason is CPU: an initial reconcile
is thousands of server-side applies, and on a small controller the client's CPU is taken
from the API servers it waits for. Measured on the same apply (benchmarks/bench_reconcile.py
and docs/gitops.md): the kubernetes client's ``ApiClient`` over urllib3 spends about
0.75 ms of CPU per request, ``http.client`` 0.35 ms, this module 0.17 ms.

What it speaks is the subset the API server uses: a status line, headers, then a body
framed by Content-Length, by chunked transfer coding, or by the end of the connection.
TLS, certificate checks and SNI are the standard library's ``ssl``. An ``http://`` proxy
(kubeconfig ``proxy-url``) is reached with CONNECT; other proxy kinds are refused by name.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

_MAX_LINE = 65536
_MAX_HEADERS = 200
_NO_BODY = frozenset({204, 304})


class TransportError(OSError):
    """The connection failed or the server's answer was not HTTP/1.1 as expected."""


class ConnectError(TransportError):
    """No connection could be opened (refused, timed out, TLS handshake failed): nothing
    of the request was sent."""


class _NoAnswer(TransportError):
    """The connection ended before the status line: mostly a kept-alive connection that the
    server closed while it was idle. The request is then sent again on another connection;
    every request the engine makes may be repeated (applies with force are idempotent, a
    delete carries the object's uid, a create of the identity answers 409 if it exists).
    ``sent``: the request had been handed to the connection (the server may have acted on
    it, if it died rather than idled)."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class SentNoAnswer(TransportError):
    """A request was sent on a connection that ended without an answer, and sending it again
    failed: the server may have acted on it (a write may have been applied)."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: dict  # lower-case name -> value (the last one of repeated headers)
    body: bytes


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect, from a server URL and TLS settings."""

    host: str
    port: int
    netloc: str  # for the Host header
    prefix: str  # path of the server URL ("" or "/some/prefix")
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    proxy: tuple[str, int] | None = None
    proxy_authorization: str | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        proxy_url: str | None = None,
    ) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server {url!r} is not an http(s)://host[:port] URL")
        proxy = authorization = None
        if proxy_url:
            p = urlsplit(proxy_url)
            if p.scheme != "http" or not p.hostname:
                raise ValueError(f"proxy-url {proxy_url!r}: only http:// proxies (CONNECT) are supported")
            proxy = (p.hostname, p.port or 80)
            if p.username is not None:
                token = f"{p.username}:{p.password or ''}".encode()
                authorization = "Basic " + base64.b64encode(token).decode()
        https = parts.scheme == "https"
        if https and ssl_context is None:
            ssl_context = ssl.create_default_context()
        return cls(
            host=parts.hostname,
            port=parts.port or (443 if https else 80),
            netloc=parts.netloc.rpartition("@")[2],
            prefix=parts.path.rstrip("/"),
            ssl_context=ssl_context if https else None,
            server_hostname=(server_hostname or parts.hostname) if https else None,
            proxy=proxy,
            proxy_authorization=authorization,
        )


def tls_context(
    *,
    verify: bool = True,
    ca_file: str | None = None,
    ca_data: str | bytes | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client TLS context: the given CA (or the system's), an optional client certificate."""
    if verify and (ca_file or ca_data):
        context = ssl.create_default_context(cafile=ca_file, cadata=ca_data)
    else:
        context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif not check_hostname:
        context.check_hostname = False
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


class _Connection:
    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        target = endpoint.proxy or (endpoint.host, endpoint.port)
        sock = socket.create_connection(target, timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.proxy:
                _connect_tunnel(sock, endpoint)
            if endpoint.ssl_context is not None:
                sock = endpoint.ssl_context.wrap_socket(sock, server_hostname=endpoint.server_hostname)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.rfile = sock.makefile("rb")

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()

    def exchange(self, request: bytes, method: str) -> tuple[Response, bool]:
        """Send one request; (the response, whether the connection may be used again)."""
        closed = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLEOFError)
        try:
            self.sock.sendall(request)
        except closed as e:
            raise _NoAnswer(f"the connection was closed: {e}", sent=False) from e
        try:
            line = self.rfile.readline(_MAX_LINE + 1)
        except closed as e:
            raise _NoAnswer(f"the connection was closed: {e}", sent=True) from e
        if not line:
            raise _NoAnswer("the server closed the connection", sent=True)
        while True:
            version, status, reason = _status_line(line)
            headers = _headers(self.rfile)
            if status >= 200:
                break
            line = self.rfile.readline(_MAX_LINE + 1)  # an interim 1xx answer: the real one follows
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if method == "HEAD" or status in _NO_BODY:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in headers:
            body = self._exactly(_int(headers["content-length"], "Content-Length"))
        else:
            body = self.rfile.read()
            keep = False
        return Response(status, reason, headers, body), keep

    def _exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) != size:
            raise TransportError(f"the answer ended after {len(data)} of {size} bytes")
        return data

    def _chunked(self) -> bytes:
        parts = []
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            size = _int(line.split(b";", 1)[0].strip(), "chunk size", base=16)
            if size == 0:
                _headers(self.rfile)  # trailers
                return b"".join(parts)
            parts.append(self._exactly(size))
            if self.rfile.readline(_MAX_LINE + 1) != b"\r\n":
                raise TransportError("a chunk is not followed by CRLF")


def _connect_tunnel(sock: socket.socket, endpoint: Endpoint) -> None:
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    authority = f"{host}:{endpoint.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if endpoint.proxy_authorization:
        lines.append(f"Proxy-Authorization: {endpoint.proxy_authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    _version, status, reason = _status_line(_readline_unbuffered(sock))
    while _readline_unbuffered(sock) not in (b"\r\n", b"\n", b""):
        pass
    if status != 200:
        raise ConnectError(
            f"proxy {endpoint.proxy[0]}:{endpoint.proxy[1]} refused CONNECT: {status} {reason}"
        )


def _readline_unbuffered(sock: socket.socket) -> bytes:
    """One line read byte by byte, so nothing of the TLS handshake that follows is consumed."""
    out = bytearray()
    while len(out) <= _MAX_LINE:
        byte = sock.recv(1)
        if not byte:
            break
        out += byte
        if byte == b"\n":
            break
    return bytes(out)


def _status_line(line: bytes) -> tuple[str, int, str]:
    if len(line) > _MAX_LINE:
        raise TransportError("status line too long")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise TransportError(f"not an HTTP/1.x answer: {line[:80]!r}")
    return parts[0], _int(parts[1], "status"), parts[2] if len(parts) > 2 else ""


def _headers(rfile) -> dict:
    headers = {}
    for _line in range(_MAX_HEADERS):
        line = rfile.readline(_MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise TransportError("the connection ended inside the headers")
        if len(line) > _MAX_LINE:
            raise TransportError("header line too long")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise TransportError(f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    raise TransportError(f"more than {_MAX_HEADERS} headers")


def _int(value, what: str, base: int = 10) -> int:
    try:
        number = int(value, base)
    except (TypeError, ValueError):
        raise TransportError(f"bad {what} {value!r}") from None
    if number < 0:
        raise TransportError(f"bad {what} {value!r}")
    return number


class Transport:
    """Requests to one endpoint over a pool of kept-alive connections. Thread-safe: each
    request holds a connection of its own; idle ones are reused, newest first."""

    def __init__(self, endpoint: Endpoint, *, timeout: float = 30.0, max_idle: int = 16) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self.connections_opened = 0

    def request(self, method: str, target: str, headers: dict, body: bytes | None = None) -> Response:
        """``target``: path and query, without the endpoint's prefix. Raises OSError
        (TransportError, ssl.SSLError, socket errors) when no answer could be had: ConnectError
        when nothing was sent, SentNoAnswer when the request was sent on a kept-alive connection
        that ended without an answer and no new connection could be opened to send it again."""
        head = [f"{method} {self.endpoint.prefix}{target} HTTP/1.1", f"Host: {self.endpoint.netloc}"]
        head.extend(f"{name}: {value}" for name, value in headers.items())
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body or b'')}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        unanswered = None  # a _NoAnswer after the request was sent on a reused connection
        while True:
            try:
                connection, reused = self._checkout()
            except ConnectError as e:
                if unanswered is not None:
                    raise SentNoAnswer(f"{unanswered}, then: {e}") from e
                raise
            try:
                response, keep = connection.exchange(request, method)
            except _NoAnswer as e:
                connection.close()
                if reused:
                    if e.sent:
                        unanswered = e
                    continue  # closed by the server while idle: try a fresh or another idle one
                raise
            except BaseException:
                connection.close()
                raise
            if keep:
                self._checkin(connection)
            else:
                connection.close()
            return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _checkout(self) -> tuple[_Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
            self.connections_opened += 1
        try:
            return _Connection(self.endpoint, self.timeout), False
        except ConnectError:
            raise
        except OSError as e:
            raise ConnectError(str(e) or type(e).__name__) from e

    def _checkin(self, connection: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(connection)
                return
        connection.close()
