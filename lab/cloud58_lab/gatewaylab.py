"""The ingress gateway with a real Consul, on 127.0.0.1, for tests/network/test_haproxy_gateway_consul.py
and benchmarks/bench_haproxy_converge.py.

* :class:`Consul`: one Consul server (the pinned 1.14.11, ``scripts/setup/consul.sh``) on
  127.0.0.1 with free ports of its own, DNS included; without ACLs, or with default-deny ACLs
  and the tokens of the caller's ``acl.tokens`` block (its requests then carry the management
  token); services registered through the agent's HTTP API, each with a TTL check the caller
  passes or fails.
* :class:`Backend`: an HTTP server in a thread that answers every request with its own name
  (``/healthz`` too) and counts the requests it served; its ``status`` (200) is the status of
  every request but ``/healthz``, which always answers 200: a bad instance that passes its checks.
* :class:`HeldBackend`: an HTTP server in a thread that holds each request until the test
  releases them, counting how many were inside it at once.
* :class:`TcpBackend`: a TCP server in a thread that greets every connection with its name and
  closes it (a protocol where the server speaks first); it can stop listening (connections
  refused) and listen again on the same port.
* :class:`Gateway`: a haproxy master-worker process in the foreground (as systemd's ``-Ws``
  runs it) on a rendered haproxy.cfg; its admin socket, its workers (the master's children)
  and a reload as systemd runs the role's drop-in (check, save the servers' state, USR2).

Every process is stopped by its own PID; nothing listens beyond loopback.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import http.client
import http.server
import io
import json
import os
import shlex
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from cloud58_lab import programs
from cloud58_lab.consulapi import single_server_config
from cloud58_lab.netlab import free_ports, stop_process

# Bounds against a hang only; no result depends on how fast the machine is.
WAIT = 120

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
# The runtime-API path's program, run from the source tree by the tests and the benchmark.
GATEWAY_SYNC = (
    COLLECTIONS / "ansible_collections/cloud58/platform/roles/haproxy_gateway/files/cloud58-gateway-sync"
)


def gateway_sync_env() -> dict:
    """The environment to run :data:`GATEWAY_SYNC` from the repository: the collection on the
    Python path, since the program imports its gateway package from there (an installed copy
    has it beside itself as cloud58_gateway). `make test` puts only lab/ on the path."""
    path = os.pathsep.join(filter(None, [str(COLLECTIONS), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


def wait_for(predicate, what: str, timeout: float = WAIT, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value; RuntimeError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(interval)


class Consul:
    """One Consul server on 127.0.0.1: ``dns_port`` answers SRV queries for the registered
    services. ``acl_tokens``: ACLs on, default deny, with this ``acl.tokens`` block (Consul's
    keys: ``initial_management``, ``agent``, ``default``, ...); every request of this class
    then sends ``initial_management``."""

    def __init__(self, work: Path, node: str, *, acl_tokens: dict | None = None) -> None:
        self.work = work
        http_port, serf, server, dns = free_ports(4)
        self.address, self.dns_port = f"http://127.0.0.1:{http_port}", dns
        self.token = (acl_tokens or {}).get("initial_management")
        (work / "data").mkdir(parents=True)
        ports = {"http": http_port, "serf_lan": serf, "server": server, "dns": dns}
        config = single_server_config(node, "dc1", work / "data", ports, acl=acl_tokens is not None)
        if acl_tokens is not None:
            config["acl"]["tokens"] = acl_tokens
        (work / "consul.json").write_text(json.dumps(config))
        with (work / "consul.log").open("w") as out:
            self.proc = subprocess.Popen(
                [programs.path("consul"), "agent", f"-config-file={work / 'consul.json'}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(self._has_leader, "a Consul leader")
        except BaseException:
            self.stop()
            raise

    def _has_leader(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"consul exited ({self.proc.returncode}):\n{self.log()}")
        try:
            return bool(self.request("GET", "/v1/status/leader")[1])
        except OSError:
            return False

    def log(self) -> str:
        return (self.work / "consul.log").read_text(errors="replace")

    def request(self, method: str, path: str, body=None):
        """``(status, decoded JSON or None)`` of one request to the agent's HTTP API."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"X-Consul-Token": self.token} if self.token else {}
        req = urllib.request.Request(self.address + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode()

    def _ok(self, method: str, path: str, body=None):
        status, value = self.request(method, path, body)
        if status != 200:
            raise RuntimeError(f"consul {method} {path}: {status} {value!r}")
        return value

    def register(self, service: str, instance: str, address: str, port: int, *, passing: bool = True) -> None:
        """Register ``instance`` of ``service`` at ``address``:``port``, its TTL check passing or critical."""
        status = "passing" if passing else "critical"
        self._ok(
            "PUT",
            "/v1/agent/service/register",
            {
                "ID": instance,
                "Name": service,
                "Address": address,
                "Port": port,
                "Check": {"CheckID": f"{instance}-ttl", "TTL": "1h", "Status": status},
            },
        )

    def deregister(self, instance: str) -> None:
        self._ok("PUT", f"/v1/agent/service/deregister/{instance}")

    def set_check(self, instance: str, passing: bool) -> None:
        """Pass or fail the TTL check of ``instance``."""
        verb = "pass" if passing else "fail"
        self._ok("PUT", f"/v1/agent/check/{verb}/{instance}-ttl")

    def passing_ports(self, service: str) -> list[int]:
        """The ports of the instances Consul reports passing (what its DNS answers)."""
        rows = self._ok("GET", f"/v1/health/service/{service}?passing=true")
        return sorted(row["Service"]["Port"] for row in rows)

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """HAProxy's health checks close the connection before the answer is sent: not an error."""


class _HttpBackend:
    """An HTTP/1.0 server in a thread on ``address`` (a loopback address, 127.0.0.0/8; port
    chosen by the kernel) that answers each GET with the status :meth:`status_of` gives its path
    and the backend's name as the body."""

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                status = backend.status_of(self.path)
                body = backend.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = _Server((address, 0), Handler)
        self.address, self.port = address, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def status_of(self, path: str) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Backend(_HttpBackend):
    """An HTTP server on ``address`` (a loopback address, 127.0.0.0/8) that answers every request
    (200) with its name and counts them; each backend on an address of its own, as instances
    on different hosts are (Consul's SRV answers name an instance by its address). Setting
    ``status`` (say 500) changes the answer to every request but ``/healthz``. ``served``
    lists what it answered, in order: the status of each request, ``"check"`` for each
    ``/healthz``."""

    def __init__(self, name: str, address: str) -> None:
        self.hits, self.first_hit, self.status = 0, None, 200
        self.served: list[int | str] = []
        super().__init__(name, address)

    def status_of(self, path: str) -> int:
        if path == "/healthz":
            self.served.append("check")
            return 200
        self.hits += 1
        if self.first_hit is None:
            self.first_hit = time.monotonic()
        status = self.status
        self.served.append(status)
        return status


class HeldBackend(_HttpBackend):
    """An HTTP server on ``address`` that holds every request but ``/healthz`` until ``gate`` is
    set, then answers it (200) with its name: a slow instance whose requests the test releases.
    ``active`` counts the requests inside the server, ``most`` the highest that count reached,
    ``served`` the requests answered; ``/healthz`` answers 200 at once and counts in none."""

    def __init__(self, name: str, address: str) -> None:
        self.active, self.most, self.served = 0, 0, 0
        self.gate = threading.Event()
        self._lock = threading.Lock()
        super().__init__(name, address)

    def status_of(self, path: str) -> int:
        if path == "/healthz":
            return 200
        with self._lock:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            self.gate.wait(WAIT)
        finally:
            with self._lock:
                self.active -= 1
                self.served += 1
        return 200

    def stop(self) -> None:
        self.gate.set()
        super().stop()


class TcpBackend:
    """A TCP server on ``address`` (a loopback address of its own) that sends its name on every
    connection it accepts and closes it, counting them in ``hits`` (health checks included).
    :meth:`refuse` stops listening: the kernel then answers every connection attempt to the
    address and port with a reset (connection refused), HAProxy's TCP health checks included.
    :meth:`listen` takes the same port again."""

    def __init__(self, name: str, address: str) -> None:
        self.name, self.address, self.port, self.hits = name, address, 0, 0
        self.sock: socket.socket | None = None
        self.listen()

    def listen(self) -> None:
        sock = socket.socket()
        # the port again after refuse(), past the TIME_WAIT of the connections it closed
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, self.port))
        sock.listen(64)
        self.port, self.sock = sock.getsockname()[1], sock
        self.thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self.thread.start()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # refuse() or stop() shut the socket down
                return
            self.hits += 1
            # a health check closes its connection at once
            with conn, contextlib.suppress(OSError):
                conn.sendall(self.name.encode())

    def refuse(self) -> None:
        """Stop listening; connections to the port are refused until :meth:`listen`."""
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
            self.sock.close()
            self.thread.join()
            self.sock = None

    stop = refuse


def tcp_get(port: int) -> str:
    """What a new connection to 127.0.0.1:``port`` receives before the other side closes it:
    a :class:`TcpBackend`'s name through the gateway, or ``""`` when HAProxy closes the
    connection without a byte (it found no server that accepted it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        chunks = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def get(port: int, path: str = "/") -> tuple[int, str]:
    """``(status, body)`` of one HTTP/1.0 request to 127.0.0.1:``port`` on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Host": "gateway"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


class Load:
    """Clients sending requests through the gateway on ``port``, each on a new connection, until
    the ``with`` block ends. ``results`` counts ``"ok"`` (a 200 from one of ``names``) and every
    other outcome by its status and body, or by the error's type."""

    def __init__(self, port: int, names, clients: int = 2) -> None:
        self.port, self.names = port, set(names)
        self.results: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = get(self.port)
                self.results["ok" if status == 200 and body in self.names else f"{status} {body[:40]!r}"] += 1
            except OSError as e:
                self.results[type(e).__name__] += 1

    def wait_ok(self, count: int, what: str) -> None:
        """Until ``count`` more requests were answered ok than when called."""
        start = self.results["ok"]
        wait_for(lambda: self.results["ok"] >= start + count, what)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def reload_commands(dropin: Path, config: Path, mainpid: int) -> list[list[str]]:
    """The ExecReload commands of a drop-in after its last reset (an empty ``ExecReload=``
    clears the unit's own), split as systemd splits them, its variables replaced."""
    lines = [
        line.split("=", 1)[1] for line in dropin.read_text().splitlines() if line.startswith("ExecReload=")
    ]
    if "" in lines:
        lines = lines[len(lines) - lines[::-1].index("") :]
    values = {"$CONFIG": [str(config)], "$MAINPID": [str(mainpid)], "$EXTRAOPTS": []}
    return [[part for word in shlex.split(line) for part in values.get(word, [word])] for line in lines]


class Gateway:
    """A haproxy master (``-W``, foreground, as systemd's ``-Ws`` without notify) on ``config``;
    the master's notices go to ``haproxy.log`` beside it, the request log is dropped."""

    def __init__(self, config: Path, admin_socket: Path) -> None:
        self.config, self.socket = config, admin_socket
        self.log_path = config.parent / "haproxy.log"
        with self.log_path.open("w") as out:
            self.master = subprocess.Popen(
                programs.argv("haproxy", "-W", "-f", config), stdout=subprocess.DEVNULL, stderr=out
            )
        try:
            self.wait_loaded(1)
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_loaded(self, count: int) -> None:
        """Until the master has logged its ``count``-th "Loading success." (start or reload)."""

        def loaded():
            if self.master.poll() is not None:
                raise RuntimeError(f"haproxy exited ({self.master.returncode}):\n{self.log()}")
            return self.log().count("Loading success.") >= count

        wait_for(loaded, f"haproxy's load number {count}")

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self, backend: str) -> dict[int, str]:
        """The servers of ``backend`` that have an address from DNS: port -> operational state
        (``show servers state``: 0 stopped, 1 starting, 2 running, 3 stopping)."""
        rows = [line.split() for line in self.admin(f"show servers state {backend}").splitlines()[2:] if line]
        # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ... srv_port (18)
        return {int(row[18]): row[5] for row in rows if row[4] != "-" and int(row[6]) & 0x20 == 0}

    def stats(self, backend: str) -> dict[int, dict[str, str]]:
        """The ``show stat`` rows of the servers of ``backend`` that have an address from DNS, by
        port: each a mapping of the CSV header's fields (``status``, ``check_status``, ``last_chk``,
        ``throttle``, ``chkdown``, ``hanafail``, ...) to their text. The slot's port comes from
        ``show servers state``: ``show stat`` leaves ``addr`` empty while a server is DOWN."""
        state = [
            line.split() for line in self.admin(f"show servers state {backend}").splitlines()[2:] if line
        ]
        ports = {row[3]: int(row[18]) for row in state if row[4] != "-"}
        # quoted fields (last_chk) may hold commas
        rows = csv.DictReader(io.StringIO(self.admin("show stat").removeprefix("# ")))
        return {
            ports[row["svname"]]: row for row in rows if row["pxname"] == backend and row["svname"] in ports
        }

    def workers(self) -> list[int]:
        """The PIDs of the master's children (its workers, old ones still finishing included)."""
        path = Path(f"/proc/{self.master.pid}/task/{self.master.pid}/children")
        return sorted(int(pid) for pid in path.read_text().split())

    def reload(self, dropin: Path) -> None:
        """What ``systemctl reload haproxy`` runs (the role's handler): the ExecReload commands
        of the role's drop-in, ``$CONFIG`` this config, ``$MAINPID`` the master, ``$EXTRAOPTS``
        empty (Debian's unit adds a master socket the test does not use)."""
        for argv in reload_commands(dropin, self.config, self.master.pid):
            subprocess.run(argv, check=True)

    def stop(self) -> None:
        stop_process(self.master, timeout=30)
