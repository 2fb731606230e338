"""Consul's HTTPS API over the unix socket of a server the tests started (nothing on the
network is addressed), the server's certificate checked against the test's CA;
:data:`DNS_QUERY`, a lookup in an agent's DNS for the tests and the lab; and
:func:`single_server_config`, the one-server Consul on loopback that tests and benchmarks run."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from pathlib import Path

LISTENERS = ("http", "https", "dns", "grpc", "grpc_tls", "serf_lan", "serf_wan", "server")


def single_server_config(
    node: str,
    datacenter: str,
    data_dir: Path,
    ports: dict,
    *,
    acl: bool = False,
    tls: dict | None = None,
    log_level: str = "warn",
) -> dict:
    """One Consul server on 127.0.0.1 that elects itself at once: the listeners in ``ports``
    (e.g. ``{"http": 8500, "serf_lan": 8301, "server": 8300}``) open, every other one off;
    ``acl`` default-deny as the consul role sets it; ``tls`` Consul's ``tls`` block."""
    unknown = sorted(set(ports) - set(LISTENERS))
    if unknown:
        raise ValueError(f"ports: {unknown} are not Consul listeners {list(LISTENERS)}")
    config = {
        "node_name": node,
        "datacenter": datacenter,
        "server": True,
        "bootstrap_expect": 1,
        "data_dir": str(data_dir),
        "bind_addr": "127.0.0.1",
        "advertise_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "ports": {name: ports.get(name, -1) for name in LISTENERS},
        "performance": {"raft_multiplier": 1},
        "disable_update_check": True,
        "log_level": log_level,
    }
    if acl:
        config["acl"] = {"enabled": True, "default_policy": "deny", "enable_token_persistence": False}
    if tls is not None:
        config["tls"] = tls
    return config


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


# A Python program that asks an agent's DNS (127.0.0.1, port argv[2]) for the A records of
# argv[1] and prints "<rcode> <addresses, sorted>"; run where the agent is (a namespace or a
# host container), which has no dig.
DNS_QUERY = r"""
import socket, struct, sys
name = sys.argv[1]
query = struct.pack(">HHHHHH", 0x5858, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(query, ("127.0.0.1", int(sys.argv[2])))
data = s.recv(4096)
rcode, answers = data[3] & 15, struct.unpack(">H", data[6:8])[0]
pos = len(query)
found = []
for _ in range(answers):
    pos += 2 if data[pos] & 0xC0 == 0xC0 else data.index(b"\0", pos) + 1 - pos
    rtype, _c, _t, length = struct.unpack(">HHIH", data[pos:pos + 10])
    pos += 10
    if rtype == 1:
        found.append(socket.inet_ntoa(data[pos:pos + length]))
    pos += length
print(rcode, " ".join(sorted(found)))
"""


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
