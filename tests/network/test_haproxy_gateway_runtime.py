"""The ingress gateway's runtime-API path against a real Consul and a real haproxy: the
haproxy.cfg rendered with ``backend_source: runtime`` (slots no resolver fills), run by Debian's
haproxy 2.6 (master-worker in the foreground), one Consul 1.14.11 server, and the program
``roles/haproxy_gateway/files/cloud58-gateway-sync`` (from the source tree) that watches Consul
with blocking queries and sets the slots over the stats socket (module_utils/gateway/runtime.py).
Consul, the backends and the gateway are lab/cloud58_lab/gatewaylab.py's, as in
test_haproxy_gateway_consul.py:

* registered instances are set into slots and every one gets requests through the gateway;
* a deregistered instance, and one whose check in Consul fails, go to maintenance and get no
  more requests; the failed one comes back into its old slot with one ``state ready``;
* the program restarted with the slots already right sends no command (its log, and haproxy's
  log that records every runtime change, both show none) and then follows the next change;
* reloads as systemd runs the role's drop-in (check, save the servers' state, USR2) while the
  program runs and two clients send requests: the new workers start from the saved slots, no
  request fails, the program notices each new worker and has nothing to send;
* a change the program sends to the old worker after the state was saved (the race a reload
  opens) is missing in the new worker: the program notices the new worker and sends it again
  at once, not at Consul's next answer (``wait_s`` is 60 s in those two tests);
* more passing instances than slots: the served keep their slots, the next by address waits
  for a free one and gets no request meanwhile; an instance with a host name is logged, never set;
* a bad configuration, and a Consul that does not answer, end it with exit 1, one line per
  error and no traceback.

Waits are bounds against a hang only.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config
from ansible_collections.cloud58.platform.plugins.module_utils.gateway.runtime import parse_servers_state
from cloud58_lab import gatewaylab, programs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROGRAM = gatewaylab.GATEWAY_SYNC
NAMES = ("r1", "r2", "r3")
SLOTS = 4
COMMAND = re.compile(r"^INFO web: (set server .*)$", re.M)
PASS = re.compile(
    r"^INFO web: (\d+) passing instance\(s\) of web \(index \d+\), (\d+) command\(s\) sent$", re.M
)
RELOAD = re.compile(
    r"^INFO web: HAProxy worker (\d+) replaced (\d+) \(a reload\), (\d+) command\(s\) sent$", re.M
)
ROLE = REPO / "collections/ansible_collections/cloud58/platform/roles/haproxy_gateway"
DROPIN = ROLE / "templates/haproxy-reload.conf.j2"
RELOADS = 3


class Sync:
    """cloud58-gateway-sync in the background, its log (stderr) in a file of its own."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log_path = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(PROGRAM), "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out,
                env=gatewaylab.gateway_sync_env(),
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def commands(self) -> list[str]:
        return COMMAND.findall(self.log())

    def reloads(self) -> list[tuple[str, str, str]]:
        """(new worker, old worker, commands sent) of each reload the program noticed."""
        return RELOAD.findall(self.log())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class Lab:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = gatewaylab.free_ports(1)[0]
        self.consul = gatewaylab.Consul(work / "consul", "hgwr-consul")
        self.backends = {name: gatewaylab.Backend(name, f"127.0.0.{51 + n}") for n, name in enumerate(NAMES)}
        settings = {
            "backend_source": "runtime",
            "servers": SLOTS,
            "bind_address": "127.0.0.1",
            "metrics_port": 0,
            "maxconn": 1000,
            "rate_limit": 10_000_000,
            "stats_socket": str(work / "admin.sock"),
            "server_state_file": str(work / "server-state"),
        }
        (work / "server-state").write_text("1\n")
        self.config = work / "haproxy.cfg"
        self.config.write_text(
            haproxy_config([{"name": "web", "port": self.port, "check_path": "/healthz"}], settings)
        )
        self.sync_config = self.write_config("sync.json", self.consul.address)
        self.state = work / "server-state"
        # the role's reload drop-in, from its template, for this test's socket and state file
        self.dropin = work / "cloud58-reload.conf"
        self.dropin.write_text(
            jinja2.Template(DROPIN.read_text(), undefined=jinja2.StrictUndefined).render(
                ansible_managed="test_haproxy_gateway_runtime.py",
                haproxy_gateway_stats_socket=str(work / "admin.sock"),
                haproxy_gateway_server_state_file=str(self.state),
            )
        )
        self.gateway = gatewaylab.Gateway(self.config, work / "admin.sock")
        self.loads = 1
        self.sync = Sync(self.sync_config, work / "sync-1.log")
        self.runs = 1

    def write_config(self, name: str, consul_address: str, **extra) -> Path:
        path = self.work / name
        config = {
            "consul_address": consul_address,
            "stats_socket": str(self.work / "admin.sock"),
            "services": [{"backend": "web"}],
            "wait_s": 5,
            **extra,
        }
        path.write_text(json.dumps(config))
        return path

    def restart_sync(self, config: Path | None = None) -> Sync:
        self.sync.stop()
        self.runs += 1
        self.sync = Sync(config or self.sync_config, self.work / f"sync-{self.runs}.log")
        return self.sync

    def run_reload_step(self, argv: list[str]) -> None:
        subprocess.run(argv, check=True)
        if argv[:2] == ["/bin/kill", "-USR2"]:
            self.loads += 1
            self.gateway.wait_loaded(self.loads)

    def worker(self) -> int:
        return int(re.search(r"^Pid: (\d+)$", self.gateway.admin("show info"), re.M).group(1))

    def slots(self) -> dict[tuple[str, int], str]:
        """The slots in service: (address, port) -> slot name."""
        state = parse_servers_state(self.gateway.admin("show servers state web"), "web")
        return {(s.address, s.port): s.name for s in state if s.in_service}

    def wait_slots(self, names, passing: int | None = None) -> dict[tuple[str, int], str]:
        """The slots once they hold ``names`` and the program has logged the pass that set them:
        it logs each command after HAProxy took it, and the pass's summary after its commands,
        so the last summary naming ``passing`` instances (default: one per name) means every
        command of that pass is in the log."""
        want = {(self.backends[n].address, self.backends[n].port) for n in names}
        passing = len(names) if passing is None else passing

        def right():
            if self.sync.proc.poll() is not None:
                raise RuntimeError(
                    f"cloud58-gateway-sync exited ({self.sync.proc.returncode}):\n{self.sync.log()}"
                )
            slots = self.slots()
            logged = [count for count, _ in PASS.findall(self.sync.log())][-1:] == [str(passing)]
            return slots if set(slots) == want and logged else None

        return gatewaylab.wait_for(
            right, f"the slots in service to be {sorted(names)}, {passing} passing instance(s) logged"
        )

    def answers(self, count: int) -> set[tuple[int, str]]:
        return {gatewaylab.get(self.port) for _ in range(count)}

    def hits(self) -> dict[str, int]:
        return {name: backend.hits for name, backend in self.backends.items()}

    def stop(self) -> None:
        self.sync.stop()
        self.gateway.stop()
        for backend in self.backends.values():
            backend.stop()
        self.consul.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    programs.require("consul", "haproxy", "socat")
    work = tmp_path_factory.mktemp("haproxy-gateway-runtime")
    lab = None
    try:
        lab = Lab(work)
        yield lab
    except BaseException:
        if lab is not None:
            print(f"--- consul\n{lab.consul.log()}\n--- haproxy\n{lab.gateway.log()}")
            print(f"--- sync\n{lab.sync.log()}")
        raise
    finally:
        if lab is not None:
            lab.stop()


def test_registered_instances_are_set_into_slots_and_all_get_traffic(lab):
    assert lab.slots() == {}
    for name in NAMES:
        backend = lab.backends[name]
        lab.consul.register("web", name, backend.address, backend.port)
    slots = lab.wait_slots(NAMES)
    assert sorted(slots.values()) == ["web-1", "web-2", "web-3"]
    assert lab.answers(30) == {(200, name) for name in NAMES}
    # each instance set once: its address and port, then ready (registrations may land in one
    # answer or several, so the slots are matched by what they hold)
    commands = lab.sync.commands()
    expected = []
    for (address, port), slot in sorted(slots.items(), key=lambda item: item[1]):
        expected += [
            f"set server web/{slot} addr {address} port {port}",
            f"set server web/{slot} state ready",
        ]
    assert sorted(commands) == sorted(expected)


def test_a_deregistered_or_failing_instance_stops_getting_traffic(lab):
    before_slots, done = lab.slots(), len(lab.sync.commands())
    lab.consul.deregister("r1")
    lab.wait_slots(("r2", "r3"))
    r1 = before_slots[(lab.backends["r1"].address, lab.backends["r1"].port)]
    assert lab.sync.commands()[done:] == [f"set server web/{r1} state maint"]
    hits = lab.hits()
    assert lab.answers(20) == {(200, "r2"), (200, "r3")}
    assert lab.hits()["r1"] == hits["r1"]

    done = len(lab.sync.commands())
    lab.consul.set_check("r2", passing=False)
    lab.wait_slots(("r3",))
    hits = lab.hits()
    assert lab.answers(10) == {(200, "r3")}
    assert lab.hits()["r2"] == hits["r2"]
    lab.consul.set_check("r2", passing=True)
    slots = lab.wait_slots(("r2", "r3"))
    r2 = slots[(lab.backends["r2"].address, lab.backends["r2"].port)]
    # back into the slot that still holds its address: no addr command
    assert r2 == before_slots[(lab.backends["r2"].address, lab.backends["r2"].port)]
    assert lab.sync.commands()[done:] == [
        f"set server web/{r2} state maint",
        f"set server web/{r2} state ready",
    ]
    gatewaylab.wait_for(lambda: lab.answers(20) == {(200, "r2"), (200, "r3")}, "r2 and r3 both answering")


def test_a_restart_with_the_slots_right_sends_nothing_and_follows_the_next_change(lab):
    lab.wait_slots(("r2", "r3"))
    state_before = lab.slots()
    haproxy_log = lab.gateway.log()
    sync = lab.restart_sync()
    # its first answer from Consul, read and compared with HAProxy's slots
    first = gatewaylab.wait_for(
        lambda: re.search(
            r"^INFO web: 2 passing instance\(s\) of web \(index \d+\), (\d+) command\(s\) sent$",
            sync.log(),
            re.M,
        ),
        "the restarted sync's first pass",
    )
    assert first.group(1) == "0"
    assert sync.commands() == []
    assert lab.slots() == state_before
    # haproxy logs every change made through the runtime API ("... by 'stats socket command'",
    # "is going DOWN for maintenance", "is UP/READY (leaving forced maintenance)"): none
    assert lab.gateway.log() == haproxy_log
    # still watching: a registration is followed
    backend = lab.backends["r1"]
    lab.consul.register("web", "r1", backend.address, backend.port)
    lab.wait_slots(NAMES)
    assert len(sync.commands()) in (1, 2)  # its old slot back (ready), or another one (addr, ready)
    assert sync.commands()[-1].endswith("state ready")
    assert lab.answers(30) == {(200, name) for name in NAMES}


def test_reloads_while_the_sync_runs_keep_the_slots_and_fail_no_request(lab):
    lab.wait_slots(NAMES)
    # Consul's next answer a minute away: what follows a reload is the program's reload check
    sync = lab.restart_sync(lab.write_config("sync-slow.json", lab.consul.address, wait_s=60))
    gatewaylab.wait_for(lambda: re.search(r"passing instance\(s\) of web", sync.log()), "the first pass")
    slots = lab.slots()
    workers = [lab.worker()]
    with gatewaylab.Load(lab.port, NAMES) as load:
        for n in range(RELOADS):
            load.wait_ok(100, "100 requests before a reload")
            for argv in gatewaylab.reload_commands(lab.dropin, lab.config, lab.gateway.master.pid):
                lab.run_reload_step(argv)
            gatewaylab.wait_for(
                lambda n=n: len(sync.reloads()) == n + 1, f"the program noticing reload {n + 1}"
            )
            workers.append(lab.worker())
            assert lab.slots() == slots  # the new worker started from the saved state
        load.wait_ok(100, "100 requests after the last reload")
    assert set(load.results) == {"ok"}, load.results
    assert len(set(workers)) == RELOADS + 1
    assert sync.reloads() == [(str(new), str(old), "0") for old, new in itertools.pairwise(workers)]
    assert sync.commands() == []


def test_a_change_sent_to_the_old_worker_during_a_reload_is_sent_again_to_the_new_one(lab):
    lab.wait_slots(NAMES)
    sync = lab.sync  # the previous test's, Consul's next answer up to a minute away
    before = len(sync.reloads())
    check, save, usr2 = gatewaylab.reload_commands(lab.dropin, lab.config, lab.gateway.master.pid)
    lab.run_reload_step(check)
    lab.run_reload_step(save)  # r1 in service in the saved state
    r1 = lab.backends["r1"]
    saved = parse_servers_state(lab.state.read_text(), "web")
    assert (r1.address, r1.port) in {(s.address, s.port) for s in saved if s.in_service}
    r1_slot = lab.slots()[(r1.address, r1.port)]
    lab.consul.deregister("r1")
    gatewaylab.wait_for(lambda: sync.commands() != [], "the program taking r1 out of the old worker")
    assert sync.commands() == [f"set server web/{r1_slot} state maint"]
    old = lab.worker()
    lab.run_reload_step(usr2)  # the new worker starts from the saved state: r1 in service again
    gatewaylab.wait_for(lambda: len(sync.reloads()) == before + 1, "the program noticing the reload")
    assert sync.reloads()[-1] == (str(lab.worker()), str(old), "1")
    assert sync.commands() == [f"set server web/{r1_slot} state maint"] * 2
    assert set(lab.slots()) == {(b.address, b.port) for name, b in lab.backends.items() if name != "r1"}
    hits = lab.hits()
    assert lab.answers(20) == {(200, "r2"), (200, "r3")}
    assert lab.hits()["r1"] == hits["r1"]
    # back to the module's program (wait_s 5) and r1, for the tests after this one
    lab.restart_sync()
    lab.consul.register("web", "r1", r1.address, r1.port)
    lab.wait_slots(NAMES)


def _run(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROGRAM), "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=gatewaylab.gateway_sync_env(),
    )


def test_bad_configuration_and_silent_consul_exit_1_with_one_line_per_error(lab):
    bad = lab.write_config("bad.json", "ftp://127.0.0.1:1")
    result = _run(bad)
    assert (result.returncode, result.stderr) == (
        1,
        f"ERROR {bad}: consul_address: 'ftp://127.0.0.1:1' is not an http:// or https:// URL\n",
    )
    bad = lab.write_config("bad2.json", lab.consul.address, services=[{"backend": "Web"}])
    result = _run(bad)
    assert (result.returncode, result.stderr) == (
        1,
        f"ERROR {bad}: services[0] backend: 'Web' is not a DNS label\n",
    )

    # nothing listens on the port: refused three times, one line each, then one line and exit 1
    silent = f"http://127.0.0.1:{gatewaylab.free_ports(1)[0]}"
    config = lab.write_config("silent.json", silent, retries=3)
    result = _run(config)
    lines = result.stderr.splitlines()
    refused = f"Consul {silent}: web: [Errno 111] Connection refused"
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("INFO Consul ")
    assert lines[1:] == [f"ERROR {refused} (attempt {n} of 3)" for n in (1, 2, 3)] + [
        f"ERROR web: giving up on Consul after 3 attempts: {refused}"
    ]
    # the gateway's slots were not touched by any of them
    assert set(lab.slots()) == {(b.address, b.port) for b in lab.backends.values()}


OVERFLOW = re.compile(
    r"^WARNING web: (\d+) passing instance\(s\) beyond the backend's slots, not served: (.*)$", re.M
)
UNUSABLE = re.compile(r"^WARNING web: instance (\S+) of web left out: (.*)$", re.M)


def test_instances_beyond_the_slots_wait_for_a_free_one_and_an_unusable_one_is_left_out(lab):
    """More passing instances than slots (SLOTS = 4): the instances in a slot keep it, the lowest
    address takes the free slot, the rest are logged as not served and get no request; when a
    served instance leaves, the next one by address takes its slot (maint, addr, ready). An
    instance whose address is a host name is logged and never set. Against the real haproxy."""
    lab.wait_slots(NAMES)
    before = lab.slots()
    extra = ("r4", "r5", "r6")
    for n, name in enumerate(extra):
        lab.backends[name] = gatewaylab.Backend(name, f"127.0.0.{51 + len(NAMES) + n}")
    done = len(lab.sync.commands())
    for name in extra:  # in address order: any answer that holds r5 holds r4
        lab.consul.register("web", name, lab.backends[name].address, lab.backends[name].port)
    slots = lab.wait_slots((*NAMES, "r4"), passing=6)
    r4, r5, r6 = (lab.backends[name] for name in extra)
    assert {key: slot for key, slot in slots.items() if key in before} == before
    r4_slot = slots[(r4.address, r4.port)]
    assert r4_slot not in before.values()
    assert lab.sync.commands()[done:] == [
        f"set server web/{r4_slot} addr {r4.address} port {r4.port}",
        f"set server web/{r4_slot} state ready",
    ]
    gatewaylab.wait_for(
        lambda: (
            OVERFLOW.findall(lab.sync.log())[-1:] == [("2", f"{r5.address}:{r5.port} {r6.address}:{r6.port}")]
        ),
        "the warning naming r5 and r6",
    )
    gatewaylab.wait_for(lambda: lab.answers(20) == {(200, n) for n in (*NAMES, "r4")}, "r1 to r4 answering")
    assert (r5.hits, r6.hits) == (0, 0)

    # r1 leaves: r5, the lowest address not served, takes r1's slot
    r1 = lab.backends["r1"]
    r1_slot = slots[(r1.address, r1.port)]
    done = len(lab.sync.commands())
    lab.consul.deregister("r1")
    lab.wait_slots(("r2", "r3", "r4", "r5"), passing=5)
    assert lab.sync.commands()[done:] == [
        f"set server web/{r1_slot} state maint",
        f"set server web/{r1_slot} addr {r5.address} port {r5.port}",
        f"set server web/{r1_slot} state ready",
    ]
    assert OVERFLOW.findall(lab.sync.log())[-1] == ("1", f"{r6.address}:{r6.port}")
    gatewaylab.wait_for(
        lambda: lab.answers(20) == {(200, n) for n in ("r2", "r3", "r4", "r5")}, "r2 to r5 answering"
    )
    hits = lab.hits()
    assert r6.hits == 0
    assert lab.answers(20) == {(200, n) for n in ("r2", "r3", "r4", "r5")}
    assert (lab.hits()["r1"], r6.hits) == (hits["r1"], 0)

    # an instance registered by host name: logged, never set
    done, served = len(lab.sync.commands()), lab.slots()
    lab.consul.register("web", "r7", "backend-7.lab.invalid", 8080)

    def passes():
        found = PASS.findall(lab.sync.log())
        return found if found[-1][0] == "6" else None  # r2 to r6, and r7

    # the pass of Consul's answer with r7 sent nothing, and logged r7 once
    assert gatewaylab.wait_for(passes, "the pass of Consul's answer with r7")[-1] == ("6", "0")
    assert UNUSABLE.findall(lab.sync.log()) == [
        ("r7", "address 'backend-7.lab.invalid' is not an IP address")
    ]
    assert lab.slots() == served
    assert lab.sync.commands()[done:] == []
