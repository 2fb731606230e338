"""cloud58-crashkeeper marks a crashed pod Failed and its Deployment replaces it.

A real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) with one
kwok node runs a Deployment of one pod that opted in (``cloud58.io/crash``). kwok plays the
kubelet for the API; the container that "is" that pod runs in a private containerd
(``lab/cloud58_lab/crashlab.py``) with the CRI's pod labels. The agent's ``capture`` keeps the
site and patches the Pod's status through the apiserver: the pod is Failed with reason
CrashPreserved, and the real ReplicaSet controller starts a replacement that becomes Running.
It runs twice: straight to the API server, and through a TCP forwarder that closes the first 5
connections, where the agent must send the patch again (before, the client's MaxRetryError
ended the agent and the pod stayed Running, never replaced; a lab run under load, of which no
agent log was kept, ended with a crashed pod not Failed and replaced within 240 s).
The network cut is proven in tests/network/test_crashkeeper.py; here the container has no veth.
The second test: a live dump at a failed liveness probe (``watch --node``), completed at the exit.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import queue
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from cloud58_lab import programs
from cloud58_lab.crashlab import CrashLab

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "collections/ansible_collections/cloud58/platform/agents/cloud58_crashkeeper.py"
CRASH = json.dumps({"app": "shop", "dump": ["sh", "-c", "echo goroutine 1 [running]"]})
WAIT = 45  # a guard that turns a hang into a failure; no duration is asserted


def _eventually(check, what: str):
    deadline = time.monotonic() + WAIT
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still {got!r}", pytrace=False)
        time.sleep(0.2)


def _running(core: k8s.CoreV1Api) -> list[str]:
    pods = core.list_namespaced_pod("default", label_selector="app=shop").items
    return sorted(p.metadata.name for p in pods if p.status.phase == "Running")


def _agent(lab: CrashLab, root: Path, kubeconfig, context: str, command: str, *args: str) -> list[str]:
    """The agent's command line: ``command`` on the lab's containerd, a 64M budget, the cluster."""
    return programs.argv(
        "python3",
        AGENT,
        command,
        *args,
        "--address",
        lab.address,
        "--root",
        root,
        "--pod-logs",
        lab.pod_logs,
        "--max-bytes",
        "64M",
        "--min-free-bytes",
        "0",
        "--kubeconfig",
        kubeconfig,
        "--context",
        context,
    )


def _shop(crash: str) -> dict:
    """A Deployment of one pod of shop that opted in with the annotation ``crash``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}, "annotations": {"cloud58.io/crash": crash}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/shop:1"}]},
            },
        },
    }


class _DroppingProxy:
    """A TCP forwarder to ``target`` (host, port) on the same host that closes the first
    ``drop`` connections it accepts before any byte is read: an API server that is lost, to
    its client, in the middle of each request (TLS passes through untouched)."""

    def __init__(self, target: tuple, drop: int) -> None:
        self.target, self.drop, self.accepted = target, drop, 0
        self.server = socket.create_server((target[0], 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            if self.accepted <= self.drop:
                conn.close()
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


def _through(kubeconfig: Path, context: str, tmp_path: Path, drop: int):
    """A copy of ``kubeconfig`` whose ``context`` reaches its API server through a
    _DroppingProxy that drops the first ``drop`` connections; (path, proxy)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster_name = next(c["context"]["cluster"] for c in config["contexts"] if c["name"] == context)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == cluster_name)
    url = urllib.parse.urlsplit(cluster["server"])
    proxy = _DroppingProxy((url.hostname, url.port), drop)
    cluster["server"] = f"https://{url.hostname}:{proxy.port}"
    path = tmp_path / "kubeconfig-through-proxy"
    path.write_text(yaml.safe_dump(config))
    return path, proxy


# 0: the API server answers at once. 5: the first five connections are lost, fewer than the
# agent's attempts (6; its API client does not retry on its own): the agent sends the patch
# again and the pod is marked.
@pytest.mark.parametrize("dropped", [0, 5])
def test_crashed_pod_is_marked_failed_and_replaced(kube_cluster_factory, tmp_path, dropped):
    cset = kube_cluster_factory(["cr1"], controllers=True, kwok_nodes=1)
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cset.kubeconfig), context="cr1"))
    cset["cr1"].kubectl("apply", "-f", "-", stdin=json.dumps(_shop(CRASH)))
    [first] = _eventually(lambda: _running(core), "a Running pod of shop")
    kubeconfig, proxy = _through(Path(cset.kubeconfig), "cr1", tmp_path, dropped)

    with CrashLab() as lab:
        lab.start(
            "shop-app",
            "echo serving; exec sleep 1000",
            f"default/{first}",
            annotations={"cloud58.io/crash": CRASH},
        )
        try:
            done = subprocess.run(
                _agent(
                    lab,
                    tmp_path / "crash",
                    kubeconfig,
                    "cr1",
                    "capture",
                    "--container-id",
                    "shop-app",
                    "--guard-seconds",
                    "0",  # the guard: the next test
                ),
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            proxy.close()
    assert done.returncode == 0, done.stderr[-3000:]
    retried = [line for line in done.stderr.splitlines() if "marking it Failed" in line]
    assert (len(retried) > 0) == (dropped > 0), done.stderr[-3000:]
    assert all(line.startswith(f"cloud58-crashkeeper: pod default/{first}: ") for line in retried), retried
    assert proxy.accepted > dropped
    result = json.loads(done.stdout)
    assert result["pod_failed"] == "Failed"
    assert (Path(result["site"]) / "dump").read_text() == "goroutine 1 [running]\n"
    crashed = core.read_namespaced_pod_status(first, "default").status
    message = (
        f"container app was failing (still running); crash site {result['site']}; "
        "no veth found to take down by cloud58-crashkeeper"
    )
    assert (crashed.phase, crashed.reason, crashed.message) == ("Failed", "CrashPreserved", message)
    assert _crash_condition(crashed) == ("True", "CrashPreserved", message)
    replacement = _eventually(lambda: [n for n in _running(core) if n != first], "a Running replacement")
    assert len(replacement) == 1
    cset["cr1"].kubectl("delete", "deployment", "shop", "-n", "default")


def test_a_phase_written_back_over_the_mark_is_marked_again(kube_cluster_factory, tmp_path):
    """The kubelet sends a pod's status from the copy of the pod it last saw: a status it made
    before the agent's mark reached that copy, sent after it, puts phase Running back (the API
    server takes it), and the crashed pod may never be replaced (a lab run ended with such a pod
    neither Failed nor replaced; its logs were not kept). kwok does not race like that, so the
    test plays that kubelet: as soon as the pod is Failed it patches phase Running back. The
    agent's guard (``--guard-seconds 20``: reads at 1, 3, 7 and 15 s) marks it Failed again,
    once, and says so. A bare pod: with a ReplicaSet, two active pods made it delete one, and
    which one changed between runs (the crashed one, then 404 for the guard: tried); the
    replacement is the previous test's."""
    cset = kube_cluster_factory(["cr3"], controllers=True, kwok_nodes=1)
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cset.kubeconfig), context="cr3"))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "shop-raced",
            "namespace": "default",
            "annotations": {"cloud58.io/crash": CRASH},
        },
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/shop:1"}]},
    }
    # a pod's admission needs the namespace's default ServiceAccount, which the
    # controller-manager creates too: whichever comes first
    cset["cr3"].kubectl("create", "serviceaccount", "default", check=False)
    cset["cr3"].kubectl("apply", "-f", "-", stdin=json.dumps(pod))

    def phase() -> str:
        return core.read_namespaced_pod_status("shop-raced", "default").status.phase

    _eventually(lambda: phase() == "Running", "shop-raced Running")
    with CrashLab() as lab:
        lab.start(
            "shop-raced", "exec sleep 1000", "default/shop-raced", annotations={"cloud58.io/crash": CRASH}
        )
        argv = _agent(
            lab, tmp_path / "crash", cset.kubeconfig, "cr3", "capture", "--container-id", "shop-raced"
        )
        agent = subprocess.Popen(
            [*argv, "--guard-seconds", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            _eventually(lambda: phase() == "Failed", "the pod marked Failed")
            core.patch_namespaced_pod_status("shop-raced", "default", {"status": {"phase": "Running"}})
            written_back = phase()
            out, err = agent.communicate(timeout=120)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
    assert written_back == "Running"
    assert agent.returncode == 0, err[-3000:]
    result = json.loads(out)
    assert (result["pod_failed"], result["marked_again"]) == ("Failed", 1), err[-3000:]
    said = [line for line in err.splitlines() if "went back" in line]
    assert said == [
        "cloud58-crashkeeper: pod default/shop-raced: its phase went back to Running after it was "
        "marked Failed (a status the kubelet made before it saw the mark); marking it again"
    ]
    crashed = core.read_namespaced_pod_status("shop-raced", "default").status
    assert (crashed.phase, crashed.reason, _crash_condition(crashed)[:2]) == (
        "Failed",
        "CrashPreserved",
        ("True", "CrashPreserved"),
    )


HUNG = json.dumps({"app": "shop", "dump": ["sh", "-c", "echo goroutine 1 [semacquire]; cat /work/state"]})


def _unhealthy(name: str, pod: str, node: str, message: str, count: int = 1) -> dict:
    """A core/v1 Event as a kubelet posts it when a probe of container ``app`` fails."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {
            "kind": "Pod",
            "namespace": "default",
            "name": pod,
            "apiVersion": "v1",
            "fieldPath": "spec.containers{app}",
        },
        "reason": "Unhealthy",
        "message": message,
        "source": {"component": "kubelet", "host": node},
        "type": "Warning",
        "count": count,
        "firstTimestamp": now,
        "lastTimestamp": now,
    }


def test_a_failed_liveness_probe_dumps_the_running_container_and_its_exit_completes_the_site(
    kube_cluster_factory, tmp_path
):
    """``watch --kubeconfig --node`` follows the kubelet's Unhealthy Events of its node through
    the real apiserver's watch (server-side field selector, the node kept by the agent). kwok
    runs no probes, so the test posts the Events the kubelet would: a readiness failure and a
    liveness failure of another node are ignored; the first liveness failure of this node's pod
    dumps the still running container (the dump reads a file only that container has); the
    repeat (the kubelet counts it on the same Event) is skipped; the kill that follows (SIGKILL,
    as the kubelet's after failureThreshold) completes the same site with the logs and the layer,
    and marks the pod Failed. The lab runs the same with the kubelet's own probe
    (tests/integration/test_control_plane_lab.py)."""
    cset = kube_cluster_factory(["cr2"], controllers=True, kwok_nodes=1)
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cset.kubeconfig), context="cr2"))
    cset["cr2"].kubectl("apply", "-f", "-", stdin=json.dumps(_shop(HUNG)))
    [first] = _eventually(lambda: _running(core), "a Running pod of shop")
    node = core.read_namespaced_pod(first, "default").spec.node_name
    root = tmp_path / "crash"

    with CrashLab() as lab:
        lab.start(
            "shop-hung",
            "echo serving; echo held lock 7 > /work/state; exec sleep 1000",
            f"default/{first}",
            annotations={"cloud58.io/crash": HUNG},
        )
        _eventually(lambda: lab.status("shop-hung") == "RUNNING", "the container running")
        agent = subprocess.Popen(
            _agent(lab, root, cset.kubeconfig, "cr2", "watch", "--node", node, "--metrics-port", "0"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue = queue.Queue()
        errors: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in agent.stdout], daemon=True).start()
        threading.Thread(target=lambda: [errors.put(x) for x in agent.stderr], daemon=True).start()
        try:
            url = errors.get(timeout=WAIT).split(" metrics on ", 1)[1].strip()
            assert json.loads(lines.get(timeout=WAIT)) == {
                "watching": lab.address,
                "namespace": "k8s.io",
                "liveness": node,
            }
            ignored = [
                _unhealthy("shop.readiness", first, node, "Readiness probe failed: connection refused"),
                _unhealthy(
                    "shop.elsewhere", first, "cr2-other-node", "Liveness probe failed: connection refused"
                ),
            ]
            for event in ignored:
                core.create_namespaced_event("default", event)
            liveness = (
                'Liveness probe failed: Get "http://198.18.64.5:8080/healthz": context deadline exceeded'
            )
            core.create_namespaced_event("default", _unhealthy("shop.liveness", first, node, liveness))
            live = json.loads(_next(lines, errors, "the live dump's line"))
            site = Path(live["site"])
            assert (site / "dump").read_text() == "goroutine 1 [semacquire]\nheld lock 7\n"
            assert {
                k: live["manifest"][k]
                for k in ("pod", "container", "exit_code", "dump", "liveness", "exited")
            } == {
                "pod": f"default/{first}",
                "container": "app",
                "exit_code": None,
                "dump": "completed, exit status 0",
                "liveness": liveness,
                "exited": False,
            }
            assert sorted(f["name"] for f in live["manifest"]["files"]) == ["dump", "dump.stderr"]
            assert lab.status("shop-hung") == "RUNNING"
            assert core.read_namespaced_pod_status(first, "default").status.phase == "Running"

            # the kubelet's repeat: the same Event, counted
            core.patch_namespaced_event("shop.liveness", "default", {"count": 2})
            _eventually(
                lambda: (
                    _metrics(url).get('cloud58_crashkeeper_liveness_failures_total{result="skipped"}') == "1"
                ),
                "the repeat counted as skipped",
            )
            lab.ctr("tasks", "kill", "--signal", "SIGKILL", "shop-hung")
            done = json.loads(_next(lines, errors, "the completed site's line"))
            samples = _metrics(url)
        finally:
            agent.terminate()
            agent.wait()
    assert done["site"] == str(site)
    assert done["completed_live_site"] is True
    manifest = json.loads((site / "manifest.json").read_text())
    assert manifest == done["manifest"]
    assert {k: manifest[k] for k in ("exit_code", "dump", "liveness", "exited", "dumped", "started")} == {
        "exit_code": 137,
        "dump": "completed, exit status 0",
        "liveness": liveness,
        "exited": True,
        "dumped": live["manifest"]["finished"],
        "started": live["manifest"]["started"],
    }
    assert sorted(f["name"] for f in manifest["files"]) == ["dump", "dump.stderr", "layer.txt", "logs/0.log"]
    assert (site / "dump").read_text() == "goroutine 1 [semacquire]\nheld lock 7\n"  # kept, not run again
    assert [p.name for p in root.glob("*/*")] == [site.name]  # one site for the one crash
    assert {
        k: samples[k]
        for k in (
            'cloud58_crashkeeper_liveness_failures_total{result="dumped"}',
            'cloud58_crashkeeper_liveness_failures_total{result="skipped"}',
            'cloud58_crashkeeper_liveness_failures_total{result="failed"}',
            'cloud58_crashkeeper_exits_total{result="captured"}',
            'cloud58_crashkeeper_dumps_total{outcome="completed"}',
            'cloud58_crashkeeper_pod_marks_total{result="failed"}',
            "cloud58_crashkeeper_sites",
        )
    } == {
        'cloud58_crashkeeper_liveness_failures_total{result="dumped"}': "1",
        'cloud58_crashkeeper_liveness_failures_total{result="skipped"}': "1",
        'cloud58_crashkeeper_liveness_failures_total{result="failed"}': "0",
        'cloud58_crashkeeper_exits_total{result="captured"}': "1",
        'cloud58_crashkeeper_dumps_total{outcome="completed"}': "1",
        'cloud58_crashkeeper_pod_marks_total{result="failed"}': "1",
        "cloud58_crashkeeper_sites": "1",
    }
    crashed = core.read_namespaced_pod_status(first, "default").status
    assert (crashed.phase, crashed.reason) == ("Failed", "CrashPreserved")
    assert _crash_condition(crashed)[:2] == ("True", "CrashPreserved")
    assert f"crash site {site};" in _crash_condition(crashed)[2]
    replacement = _eventually(lambda: [n for n in _running(core) if n != first], "a Running replacement")
    assert len(replacement) == 1


def _crash_condition(status) -> tuple:
    """(status, reason, message) of the pod's condition cloud58.io/CrashPreserved."""
    [found] = [c for c in status.conditions or [] if c.type == "cloud58.io/CrashPreserved"]
    return found.status, found.reason, found.message


def _next(lines: queue.Queue, errors: queue.Queue, what: str) -> str:
    """The agent's next line; on a hang, a failure with what it logged."""
    try:
        return lines.get(timeout=WAIT)
    except queue.Empty:
        logged = []
        while not errors.empty():
            logged.append(errors.get())
        pytest.fail(f"{what}: none after {WAIT}s; the agent logged:\n{''.join(logged)}", pytrace=False)


def _metrics(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")
