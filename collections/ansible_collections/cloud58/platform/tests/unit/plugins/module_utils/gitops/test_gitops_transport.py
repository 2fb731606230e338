"""The engine's HTTP/1.1 transport against a scripted server on loopback: the framings an
API server uses, kept-alive connections and their reuse, TLS with client certificates,
and a CONNECT proxy. Each test scripts the exact bytes the server sends."""

from __future__ import annotations

import re
import socket
import ssl
import threading

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.transport import (
    ConnectError,
    Endpoint,
    SentNoAnswer,
    Transport,
    TransportError,
    tls_context,
)
from ansible_collections.cloud58.platform.plugins.module_utils.pki import x509 as pki


class ScriptedServer:
    """Answers each request with the next scripted reply: (raw bytes, close after it).

    ``requests`` records (connection number, request head, body); ``connections`` counts
    accepted connections. With ``tls`` the server needs a client certificate.
    """

    def __init__(self, replies, *, tls: ssl.SSLContext | None = None, proxy: bool = False):
        self.replies = list(replies)
        self.requests: list[tuple[int, str, bytes]] = []
        self.connections = 0
        self.tls = tls
        self.proxy = proxy
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn, self.connections), daemon=True).start()

    def _handle(self, conn, number):
        try:
            if self.proxy:
                head = _read_head(conn.makefile("rb", buffering=0))
                self.requests.append((number, head, b""))
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            rfile = conn.makefile("rb")
            while self.replies:
                head = _read_head(rfile)
                if not head:
                    return
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _sep, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                self.requests.append((number, head, rfile.read(length)))
                reply, close = self.replies.pop(0)
                conn.sendall(reply)
                if close:
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def _read_head(rfile) -> str:
    lines = []
    while True:
        line = rfile.readline()
        if not line:
            return ""
        if line == b"\r\n":
            return "\r\n".join(lines)
        lines.append(line.decode().rstrip("\r\n"))


@pytest.fixture
def server():
    started = []

    def start(replies, **kwargs):
        s = ScriptedServer(replies, **kwargs)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def transport_for(srv, scheme="http", **kwargs) -> Transport:
    return Transport(Endpoint.from_url(f"{scheme}://127.0.0.1:{srv.port}/prefix", **kwargs), timeout=5)


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (ok(b'{"a":1}'), b'{"a":1}'),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'4\r\n{"a"\r\n3;ext=1\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n',
            b'{"a":1}',
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"{}"), b"{}"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", b""),
    ],
    ids=["content-length", "chunked-with-extension-and-trailer", "interim-100", "no-content"],
)
def test_each_framing_gives_the_body_and_keeps_the_connection(server, reply, body):
    srv = server([(reply, False), (ok(b"again"), False)])
    transport = transport_for(srv)
    first = transport.request("GET", "/api/v1", {"Accept": "application/json"})
    second = transport.request("GET", "/api/v1", {})
    assert (first.body, second.body, srv.connections, transport.connections_opened) == (body, b"again", 1, 1)


def test_the_request_carries_prefix_host_headers_and_a_length(server):
    srv = server([(ok(b"{}"), False)])
    transport_for(srv).request("PATCH", "/api/v1/x?a=b", {"Content-Type": "application/json"}, b'{"k":1}')
    assert srv.requests == [
        (
            1,
            f"PATCH /prefix/api/v1/x?a=b HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 7",
            b'{"k":1}',
        )
    ]


def test_a_body_until_the_end_of_the_connection_ends_its_use(server):
    srv = server([(b"HTTP/1.0 200 OK\r\n\r\nall of it", True), (ok(b"next"), False)])
    transport = transport_for(srv)
    assert transport.request("GET", "/", {}).body == b"all of it"
    assert transport.request("GET", "/", {}).body == b"next"
    assert srv.connections == 2


def test_connection_close_is_honoured(server):
    srv = server([(ok(b"1", "Connection: close\r\n"), True), (ok(b"2"), False)])
    transport = transport_for(srv)
    assert [transport.request("GET", "/", {}).body for _n in range(2)] == [b"1", b"2"]
    assert srv.connections == 2


def test_a_kept_alive_connection_the_server_closed_is_replaced_and_the_request_sent_again(server):
    # The server closes after its first answer without saying so: the transport finds out
    # only when it reuses the connection, and sends the request again on a new one.
    srv = server([(ok(b"1"), True), (ok(b"2"), False)])
    transport = transport_for(srv)
    assert [transport.request("GET", f"/{n}", {}).body for n in (1, 2)] == [b"1", b"2"]
    assert [(number, head.split("\r\n")[0]) for number, head, _body in srv.requests] == [
        (1, "GET /prefix/1 HTTP/1.1"),
        (2, "GET /prefix/2 HTTP/1.1"),
    ]


def test_a_request_sent_on_a_connection_that_died_unanswered_is_reported_as_sent(server):
    # The server reads the request and dies, its listener with it: the request cannot be sent
    # again, and the error is not a ConnectError: the server may have acted on it.
    srv = server([(ok(b"1"), False), (b"", True)])
    transport = transport_for(srv)
    assert transport.request("GET", "/1", {}).body == b"1"
    srv.sock.shutdown(socket.SHUT_RDWR)  # wakes its accept(): nothing listens from here on
    srv.close()
    with pytest.raises(SentNoAnswer) as info:
        transport.request("PATCH", "/2", {}, b"{}")
    assert not isinstance(info.value, ConnectError)
    assert str(info.value).startswith("the server closed the connection, then: ")
    assert [head.split("\r\n")[0] for _n, head, _body in srv.requests] == [
        "GET /prefix/1 HTTP/1.1",
        "PATCH /prefix/2 HTTP/1.1",
    ]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "the answer ended after 5 of 10 bytes"),
        (b"SSH-2.0-OpenSSH\r\n", "not an HTTP/1.x answer: b'SSH-2.0-OpenSSH\\r\\n'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length 'x'"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size b'zz'"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "malformed header line b'no colon\\r\\n'"),
    ],
    ids=["truncated-body", "not-http", "bad-length", "bad-chunk", "bad-header"],
)
def test_a_broken_answer_is_a_transport_error_naming_what_is_wrong(server, reply, message):
    srv = server([(reply, True)])
    with pytest.raises(TransportError) as info:
        transport_for(srv).request("GET", "/", {})
    assert str(info.value) == message


def test_a_fresh_connection_that_gets_no_answer_is_an_error_not_a_retry(server):
    srv = server([(b"", True)])
    with pytest.raises(TransportError) as info:
        transport_for(srv).request("GET", "/", {})
    assert (str(info.value), srv.connections) == ("the server closed the connection", 1)


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as files."""
    d = tmp_path_factory.mktemp("tls")
    ca_key = pki.generate_key("ecdsa-p256")
    ca = pki.make_ca(ca_key, "test-ca", 1)
    files = {"ca.crt": pki.cert_pem(ca)}
    for stem, usage, ips in (("server", "server", ["127.0.0.1"]), ("client", "client", [])):
        key = pki.generate_key("ecdsa-p256")
        spec = {
            "common_name": stem,
            "organizations": [],
            "usages": [usage],
            "dns_names": [],
            "ip_addresses": ips,
        }
        files[f"{stem}.crt"] = pki.cert_pem(pki.make_leaf(spec, key, ca_cert=ca, ca_key=ca_key, days=1))
        files[f"{stem}.key"] = pki.key_pem(key)
    for name, data in files.items():
        (d / name).write_bytes(data)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(d / "server.crt", d / "server.key")
    server_ctx.load_verify_locations(d / "ca.crt")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    return d, server_ctx


def test_tls_with_a_client_certificate_verified_both_ways(server, tls_pair):
    d, server_ctx = tls_pair
    srv = server([(ok(b"secure"), False)], tls=server_ctx)
    client_ctx = tls_context(
        ca_file=str(d / "ca.crt"), cert_file=str(d / "client.crt"), key_file=str(d / "client.key")
    )
    assert transport_for(srv, "https", ssl_context=client_ctx).request("GET", "/", {}).body == b"secure"


def test_tls_refuses_a_server_signed_by_another_ca(server, tls_pair, tmp_path):
    _d, server_ctx = tls_pair
    other = pki.make_ca(pki.generate_key("ecdsa-p256"), "other-ca", 1)
    (tmp_path / "other.crt").write_bytes(pki.cert_pem(other))
    srv = server([(ok(b"secure"), False)], tls=server_ctx)
    transport = transport_for(srv, "https", ssl_context=tls_context(ca_file=str(tmp_path / "other.crt")))
    with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        transport.request("GET", "/", {})
    assert srv.requests == []


def test_a_port_nobody_listens_on_is_a_connect_error():
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ConnectError, match="Connection refused"):
        Transport(Endpoint.from_url(f"http://127.0.0.1:{port}"), timeout=5).request("GET", "/", {})


def test_an_http_proxy_is_reached_with_connect(server):
    srv = server([(ok(b"tunnelled"), False)], proxy=True)
    endpoint = Endpoint.from_url("http://127.0.0.1:6443", proxy_url=f"http://u:p@127.0.0.1:{srv.port}")
    assert Transport(endpoint, timeout=5).request("GET", "/api", {}).body == b"tunnelled"
    assert [head for _n, head, _b in srv.requests] == [
        "CONNECT 127.0.0.1:6443 HTTP/1.1\r\nHost: 127.0.0.1:6443\r\nProxy-Authorization: Basic dTpw",
        "GET /api HTTP/1.1\r\nHost: 127.0.0.1:6443",
    ]


@pytest.mark.parametrize(
    ("url", "proxy", "message"),
    [
        ("ftp://h", None, "server 'ftp://h' is not an http(s)://host[:port] URL"),
        (
            "https://h",
            "socks5://p:1080",
            "proxy-url 'socks5://p:1080': only http:// proxies (CONNECT) are supported",
        ),
    ],
)
def test_an_endpoint_it_cannot_speak_to_is_refused_by_name(url, proxy, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        Endpoint.from_url(url, proxy_url=proxy)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://10.0.0.1:6443", ("10.0.0.1", 6443, "10.0.0.1:6443", "")),
        ("https://[fd00::1]/k8s/clusters/c-1/", ("fd00::1", 443, "[fd00::1]", "/k8s/clusters/c-1")),
        ("http://api.example", ("api.example", 80, "api.example", "")),
    ],
)
def test_endpoint_from_url(url, expected):
    e = Endpoint.from_url(url)
    assert (e.host, e.port, e.netloc, e.prefix) == expected
