"""The embedded lab: a miniature cloud on this machine, built from ``inventories/lab``
through the front door.

``up`` plans the lab inventory (a bad inventory stops here, before anything starts), then
per lab datacenter starts its hosts (masters, minions, LVS directors: podman systemd
containers at the plan's addresses on the datacenter's node network) and runs
``playbooks/site.yml`` against them, as an operator runs it per datacenter (see
staticpods.py: the control plane the ``control_plane`` role installs, reached through the
``api_endpoint`` balancer; minions with containerd and a real kubelet that join the
cluster). Then it installs the Calico CRDs (crds/calico/: in production they come with
the Calico release), renders and reconciles the lab clusters through those APIs, brings
up the BGP fabric on the host containers (FRR ToRs and cores in network namespaces, the ToRs
on the datacenter's podman network; BIRD in each node container's namespace, announcing its
pod block), and prints a status table naming every stand-in still in use.
Everything started is recorded in ``.cache/lab/state.json``; ``down`` removes the host
containers and networks by their exact names, ends each fabric process by the PID recorded
there (only while its start time still matches) and deletes each namespace by its exact
name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from cloud58_lab import controlplane, nodes, programs, staticpods
from cloud58_lab.calico import install_calico_crds
from cloud58_lab.controlplane import proc_start_time
from cloud58_lab.netlab import NetLab

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".cache" / "lab"
NET_PREFIX = "c58lab-"
_STOP_GRACE = 10.0


class LabError(RuntimeError):
    """A lab step failed; the message says which and why."""


def _collections_on_path() -> None:
    path = str(REPO / "collections")
    if path not in sys.path:
        sys.path.insert(0, path)


def lab_plan(inventory: Path) -> dict:
    """The validated plan of the lab inventory, or LabError listing every problem."""
    _collections_on_path()
    from ansible_collections.cloud58.platform.plugins.module_utils.topology import (
        TopologyError,
        build_plan,
        load_inventory,
    )

    try:
        return build_plan(load_inventory(str(inventory))).as_dict()
    except TopologyError as e:
        raise LabError(f"{inventory}: the lab inventory does not plan:\n{e}") from e


def observability_urls(plan: dict, dc: str) -> dict:
    """The URLs of a lab datacenter's Prometheus and log store: site.yml runs both on the
    datacenter's Prometheus host (the lab inventory has no group monitoring or logs), at the
    roles' default ports."""
    _collections_on_path()
    from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import monitoring_hosts

    host = next(h for h in monitoring_hosts(plan) if plan["hosts"][h]["datacenter"] == dc)
    address = plan["hosts"][host]["address"]
    return {"prometheus": f"http://{address}:9090", "log store": f"http://{address}:9428"}


def bin_dir() -> Path:
    """Where the pinned upstream programs are (CLOUD58_BIN_DIR or the build cache)."""
    proc = subprocess.run(
        [str(REPO / "scripts/setup/upstream-bin-dir")], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise LabError(
            proc.stderr.strip() or "the upstream programs are not built: run 'make setup-upstream'"
        )
    return Path(proc.stdout.strip())


# ---- state -------------------------------------------------------------------------------


def _read_state(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _write_state(state_dir: Path, state: dict) -> None:
    (state_dir / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def _net_state(net: NetLab) -> dict:
    procs = []
    for router in net.routers.values():
        for name, proc in router.processes.items():
            procs.append(
                {
                    "router": router.name,
                    "daemon": name,
                    "pid": proc.pid,
                    "start_time": proc_start_time(proc.pid),
                }
            )
    return {
        "namespaces": list(net.namespaces),
        "prefix": net.prefix,
        "processes": procs,
        "workdir": str(net.workdir),
    }


def _stop_pids(procs: list[dict]) -> list[str]:
    """SIGTERM, then SIGKILL, each recorded PID whose start time still matches."""
    ours = [
        p for p in procs if p.get("start_time") is not None and proc_start_time(p["pid"]) == p["start_time"]
    ]
    for p in ours:
        os.kill(p["pid"], signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE
    while time.monotonic() < deadline and any(proc_start_time(p["pid"]) == p["start_time"] for p in ours):
        time.sleep(0.2)
    problems = []
    for p in ours:
        if proc_start_time(p["pid"]) == p["start_time"]:
            os.kill(p["pid"], signal.SIGKILL)
            problems.append(f"{p.get('router', '?')} {p.get('daemon', '?')} pid {p['pid']} needed SIGKILL")
    return problems


# ---- up / down / status -------------------------------------------------------------------

# What the lab runs in place of a production part, shown by `status` (docs/control-plane.md).
STAND_INS = (
    "control plane images: localhost/cloud58/<component>:<version> built from the pinned binaries, "
    "imported into the masters' containerd (the registry mirror)",
    "pod network: a bridge + host-local CNI configuration over each node's block (calico-node's CNI)",
    "calico-node's BIRD: BIRD 2 started by the lab in each node container's network namespace, with "
    "the configuration calico-node derives from the rendered Calico objects (cloud58_lab.calico_bird)",
    "pause image: localhost/cloud58/pause built from images/pause (the registry mirror)",
    "the demo app's image (apps/echo.yaml): the pause image with /echo as its entrypoint "
    "(the registry mirror)",
    "ToRs and cores: FRR in network namespaces with the configs tor_router renders, the ToRs on the "
    "datacenter's podman network (the racks' switches)",
    "node CPU pressure for cloud58-overload: each minion container's own cgroup "
    "(/sys/fs/cgroup/unified/cpu.pressure; /proc/pressure is the whole machine's)",
)


def node_image() -> str:
    proc = subprocess.run(
        [str(REPO / "scripts/setup/image.sh"), "--print-ref"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise LabError(f"no node image reference: {proc.stderr.strip()}")
    return proc.stdout.strip()


def merge_kubeconfigs(paths: list[Path], target: Path) -> Path:
    """One kubeconfig with every context of ``paths`` (each names its own cluster and user)."""
    import yaml

    merged: dict = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [],
        "users": [],
        "contexts": [],
    }
    for path in paths:
        config = yaml.safe_load(Path(path).read_text())
        for key in ("clusters", "users", "contexts"):
            merged[key] += config[key]
        merged.setdefault("current-context", config["current-context"])
    target.touch(mode=0o600)
    target.write_text(yaml.safe_dump(merged, sort_keys=True))
    return target


def _kubectl(kubeconfig: str, context: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        programs.resolve([bin_dir() / "kubectl", "--kubeconfig", kubeconfig, "--context", context, *args]),
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise LabError(f"kubectl --context {context} {' '.join(args)}: {proc.stderr.strip()[-1000:]}")
    return proc


class _Context:
    """A context of the lab's kubeconfig, with the ``kubectl`` that install_calico_crds calls."""

    def __init__(self, kubeconfig: str, context: str) -> None:
        self.kubeconfig, self.context = kubeconfig, context

    def kubectl(self, *args: str) -> subprocess.CompletedProcess:
        return _kubectl(self.kubeconfig, self.context, *args)


def up(
    inventory: Path = REPO / "inventories/lab",
    *,
    state_dir: Path = STATE_DIR,
    out=print,
    net_prefix: str = NET_PREFIX,
    datacenters: list[str] | None = None,
    labs: dict | None = None,
) -> int:
    """Start the lab (see the module's docstring); 0 when it is up. ``labs``: a caller that
    stays after ``up`` returns (a test) gets each datacenter's ``StaticPodLab`` in it, with
    its manifests replayed as a kubelet does while that caller runs; ``make lab`` exits and
    leaves nothing running but what ``down`` removes."""
    plan = lab_plan(inventory)
    if _read_state(state_dir):
        out("lab: already up (make lab-down removes it); status:")
        status(state_dir, out=out)
        return 0
    dcs = datacenters or sorted({c["datacenter"] for c in plan["clusters"].values()})
    unknown = sorted(set(dcs) - set(plan["datacenters"]))
    if unknown:
        known = ", ".join(sorted(plan["datacenters"]))
        raise LabError(f"{inventory}: no datacenter {', '.join(unknown)} (the lab has {known})")
    clusters = sorted(name for name, c in plan["clusters"].items() if c["datacenter"] in dcs)
    # Only one lab per datacenter on a machine: the host containers have fixed names.
    for dc in dcs:
        owner = staticpods.live_owner(dc)
        if owner is not None:
            raise LabError(
                f"{dc}: its host containers belong to the running process {owner}; stop that first"
            )
    # What a killed run (a CI stopped at its deadline) left under the fixed names would make
    # `podman network create` fail: removed here as the tests and bench_site do.
    problems = staticpods.remove_leftovers(dcs, out=lambda m: out(f"lab: {m}"))
    if problems:
        raise LabError("could not remove what an earlier run left: " + "; ".join(map(str, problems)))
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    state: dict = {"inventory": str(inventory), "datacenters": {}, "clusters": clusters}
    _write_state(state_dir, state)
    try:
        image = node_image()
        state["inotify_restore"] = nodes.raise_inotify_instances(out=lambda m: out(f"lab: {m}"))
        kubeconfigs = []
        started: dict = {}  # dc -> its StaticPodLab
        for dc in dcs:
            workdir = state_dir / "datacenters" / dc
            state["datacenters"][dc] = {"workdir": str(workdir)}
            _write_state(state_dir, state)
            # `make lab` (no caller staying) leaves the lab up: its state file keeps it.
            kept_by = None if labs is not None else state_dir / "state.json"
            # Under the mitogen strategy: a no-op site.yml on lab1 in 122 s against 385 s over
            # podman_nsenter (docs/control-plane.md, The lab; bench_site prints it per run).
            dclab = staticpods.StaticPodLab(
                dc, plan, workdir, bin_dir(), image, with_nodes=True, kept_by=kept_by, mitogen=True
            )
            started[dc] = dclab
            if labs is not None:
                labs[dc] = dclab
            out(f"lab: {dc}: {len(dclab.hosts)} hosts ({', '.join(dclab.hosts)}); playbooks/site.yml on them")
            timings = dclab.provision(out=lambda m: out(f"lab: {m}"))
            recap = nodes.recap(dclab.first_run.stdout)
            state["datacenters"][dc].update(
                cluster=dclab.cluster["name"],
                context=dclab.cluster["context"],
                hosts=sorted(dclab.hosts),
                timings=timings,
                changed={h: r["changed"] for h, r in sorted(recap.items())},
                urls=observability_urls(plan, dc),
            )
            kubeconfigs.append(dclab.endpoint)
            _write_state(state_dir, state)
        state["kubeconfig"] = str(merge_kubeconfigs(kubeconfigs, state_dir / "kubeconfig"))
        _write_state(state_dir, state)

        out("lab: installing the Calico CRDs (crds/calico/) the rendered Calico objects need")
        for dc in dcs:
            install_calico_crds(_Context(state["kubeconfig"], state["datacenters"][dc]["context"]))

        _collections_on_path()
        from cloud58_lab.pipeline import render_and_reconcile

        out("lab: rendering and reconciling the lab clusters through their API endpoints")
        result = render_and_reconcile(
            str(REPO),
            state["kubeconfig"],
            clusters,
            clusters_dir=str(state_dir / "clusters"),
            report_path=str(state_dir / "reconcile-report.json"),
            out=out,
        )
        if result.get("failed_clusters"):
            raise LabError(f"reconcile failed for {', '.join(result['failed_clusters'])}")

        out("lab: bringing up the BGP fabric on the host containers (FRR ToRs and cores, BIRD on the nodes)")
        net = NetLab(prefix=net_prefix, workdir=state_dir / "net")
        state["net"] = _net_state(net)
        summaries = {}
        for name in clusters:
            dc = plan["clusters"][name]["datacenter"]
            fabric = started[dc].join_fabric(net, str(inventory))
            state["net"] = _net_state(net)
            _write_state(state_dir, state)
            summaries[dc] = fabric.summary()
        state["bgp_summary"] = summaries
        _write_state(state_dir, state)
    except Exception as e:
        out(f"lab: start failed, removing what was started: {e}")
        down(state_dir, out=out)
        if isinstance(
            e, LabError | staticpods.StaticPodLabError | controlplane.ControlPlaneError | TimeoutError
        ):
            raise LabError(str(e)) from e
        raise
    status(state_dir, out=out)
    return 0


def down(state_dir: Path = STATE_DIR, out=print) -> int:
    state = _read_state(state_dir)
    if not state:
        shutil.rmtree(state_dir, ignore_errors=True)
        out("lab: nothing to remove")
        return 0
    problems = []
    net = state.get("net")
    if net:
        problems += _stop_pids(net["processes"])
        for ns in reversed(net["namespaces"]):
            if ns.startswith(net["prefix"]):
                subprocess.run(programs.argv("ip", "netns", "delete", ns), capture_output=True, check=False)
    for dc, entry in sorted(state.get("datacenters", {}).items()):
        problems += staticpods.down(dc, Path(entry["workdir"]))
    if "inotify_restore" in state:
        nodes.restore_inotify_instances(state["inotify_restore"], out=lambda m: out(f"lab: {m}"))
    shutil.rmtree(state_dir, ignore_errors=True)
    for p in problems:
        out(f"lab: {p}")
    out("lab: removed")
    return 0


def _cluster_row(kubeconfig: str, dc: str, entry: dict) -> tuple:
    import json

    context = entry["context"]
    try:
        version = json.loads(_kubectl(kubeconfig, context, "version", "-o", "json").stdout)["serverVersion"][
            "gitVersion"
        ]
        items = json.loads(_kubectl(kubeconfig, context, "get", "nodes", "-o", "json").stdout)["items"]
        ready = [
            n
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        ]
        namespaces = _kubectl(kubeconfig, context, "get", "namespaces", "-o", "name").stdout.split()
        ident = json.loads(
            _kubectl(
                kubeconfig, context, "get", "configmap", "-n", "kube-system", "cloud58-identity", "-o", "json"
            ).stdout
        )
        server = _kubectl(
            kubeconfig, context, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
        ).stdout
        row = (
            entry["cluster"],
            dc,
            server,
            version,
            f"{len(ready)}/{len(items)} Ready",
            str(len(namespaces)),
            ident.get("data", {}).get("cluster", "-"),
        )
    except (LabError, ValueError, KeyError, subprocess.TimeoutExpired) as e:  # shown, not fatal
        row = (entry.get("cluster", "-"), dc, "-", f"down ({type(e).__name__})", "-", "-", "-")
    return row


def status(state_dir: Path = STATE_DIR, out=print) -> int:
    state = _read_state(state_dir)
    if not state.get("kubeconfig"):
        out("lab: not running (make lab starts it)")
        return 1
    rows = [("cluster", "datacenter", "api endpoint", "version", "nodes", "namespaces", "identity")]
    rows += [_cluster_row(state["kubeconfig"], dc, e) for dc, e in sorted(state["datacenters"].items())]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for dc, entry in sorted(state["datacenters"].items()):
        took = ", ".join(f"{k} {v} s" for k, v in entry.get("timings", {}).items())
        shell = f"podman exec -it c58cp-{entry['hosts'][0]} bash"
        out(f"{dc}: site.yml on {len(entry['hosts'])} hosts ({took}); {shell}")
        for name, url in entry.get("urls", {}).items():
            out(f"{dc}: {name} {url}")
    for dc, lines in sorted(state.get("bgp_summary", {}).items()):
        out(f"BGP fabric {dc}:")
        for line in lines:
            out(f"  {line}")
    out("stand-ins in use:")
    for line in STAND_INS:
        out(f"  {line}")
    out(f"export KUBECONFIG={state['kubeconfig']}")
    return 0
