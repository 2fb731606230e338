"""The embedded lab: a miniature cloud on this machine, built from ``inventories/lab``.

``up`` plans the lab inventory (a bad inventory stops here, before anything starts), then
per lab datacenter starts a real control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok nodes), installs the Calico CRDs (crds/calico/: in production they come
with the Calico release), renders and reconciles the lab clusters, brings up the BGP fabric
(FRR ToRs and cores, BIRD node speakers) in network namespaces, gives the lab's hosts the
node roles (each a podman systemd container converged by playbooks/nodes.yml, see
nodes.py), and prints a status table.
Everything started is recorded in ``.cache/lab/state.json``; ``down`` ends each process by
the PID recorded there (only while its start time still matches) and deletes each
namespace by its exact name.
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

from cloud58_lab import controlplane, nodes, programs
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


def cluster_networks(plan: dict) -> dict[str, controlplane.ClusterNetwork]:
    """Each lab cluster's service, pod and node networks, as the plan has them."""
    import ipaddress

    nets = {}
    for name, cluster in sorted(plan["clusters"].items()):
        dc = plan["datacenters"][cluster["datacenter"]]
        nets[name] = controlplane.ClusterNetwork(
            service_cidr=ipaddress.IPv4Network(cluster["service_cidr"]),
            pod_cidr=ipaddress.IPv4Network(cluster["pod_cidr"]),
            node_cidr=ipaddress.IPv4Network(dc["networks"]["nodes"]),
        )
    return nets


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


def up(  # noqa: PLR0917 - every argument has a default; tests pass their own dirs and prefixes
    inventory: Path = REPO / "inventories/lab",
    state_dir: Path = STATE_DIR,
    out=print,
    net_prefix: str = NET_PREFIX,
    node_prefix: str = nodes.PREFIX,
    with_nodes: bool = True,
) -> int:
    plan = lab_plan(inventory)
    if _read_state(state_dir):
        out("lab: already up (make lab-down removes it); status:")
        status(state_dir, out=out)
        return 0
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    state: dict = {"inventory": str(inventory)}
    _write_state(state_dir, state)
    clusters = sorted(plan["clusters"])
    try:
        out(f"lab: starting control planes for {', '.join(clusters)}")
        cset = controlplane.start_clusters(
            clusters,
            state_dir / "controlplanes",
            bin_dir(),
            controllers=True,
            # Named after the plan's hosts, so cluster.yml's node annotations find them.
            kwok_nodes={name: plan["clusters"][name]["nodes"] for name in clusters},
            networks=cluster_networks(plan),
            die_with_parent=False,
        )
        state["controlplanes"] = str(cset.workdir)
        state["kubeconfig"] = str(cset.kubeconfig)
        _write_state(state_dir, state)

        out("lab: installing the Calico CRDs (crds/calico/) the rendered Calico objects need")
        for name in clusters:
            install_calico_crds(cset[name])

        _collections_on_path()
        from cloud58_lab.pipeline import render_and_reconcile

        out("lab: rendering and reconciling the lab clusters")
        result = render_and_reconcile(
            str(REPO),
            str(cset.kubeconfig),
            clusters,
            clusters_dir=str(state_dir / "clusters"),
            report_path=str(state_dir / "reconcile-report.json"),
            out=out,
        )
        if result.get("failed_clusters"):
            raise LabError(f"reconcile failed for {', '.join(result['failed_clusters'])}")

        out("lab: bringing up the BGP fabric (FRR ToRs and cores, BIRD nodes)")
        from cloud58_lab.bgplab import start_datacenter

        net = NetLab(prefix=net_prefix, workdir=state_dir / "net")
        state["net"] = _net_state(net)
        summaries = {}
        for name in clusters:
            dc = plan["clusters"][name]["datacenter"]
            fabric = start_datacenter(net, str(inventory), dc, name)
            state["net"] = _net_state(net)
            _write_state(state_dir, state)
            summaries[dc] = fabric.summary()
        state["bgp_summary"] = summaries
        _write_state(state_dir, state)

        if with_nodes:
            _up_nodes(plan, inventory, state_dir, state, prefix=node_prefix, out=out)
    except Exception as e:
        out(f"lab: start failed, removing what was started: {e}")
        down(state_dir, out=out)
        if isinstance(e, LabError | controlplane.ControlPlaneError | nodes.NodesError | TimeoutError):
            raise LabError(str(e)) from e
        raise
    status(state_dir, out=out)
    return 0


def _up_nodes(plan: dict, inventory: Path, state_dir: Path, state: dict, *, prefix: str, out) -> None:
    hosts = nodes.node_hosts(plan)
    image = subprocess.run(
        [str(REPO / "scripts/setup/image.sh"), "--print-ref"], capture_output=True, text=True, check=False
    )
    if image.returncode != 0:
        raise LabError(f"no node image reference: {image.stderr.strip()}")
    env = nodes.podman_env()
    state["nodes"] = {
        "containers": [prefix + h for h in hosts],
        "inotify_restore": nodes.raise_inotify_instances(out=lambda m: out(f"lab: {m}")),
    }
    _write_state(state_dir, state)
    out(f"lab: starting {len(hosts)} node containers ({prefix}<host>) from {image.stdout.strip()}")
    nodes.start_containers({prefix + h: h for h in hosts}, image.stdout.strip(), nodes.LABEL, env)
    out("lab: giving them the node roles (playbooks/nodes.yml: kernel_tuning, container_runtime, kubelet)")
    started = time.monotonic()
    recap = nodes.converge(inventory, hosts, state_dir, bin_dir(), env, prefix=prefix)
    state["nodes"]["recap"] = recap
    state["nodes"]["converge_s"] = round(time.monotonic() - started)
    _write_state(state_dir, state)


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
    if state.get("nodes"):
        problems += nodes.remove_containers(state["nodes"]["containers"], nodes.podman_env())
        nodes.restore_inotify_instances(state["nodes"].get("inotify_restore"), out=lambda m: out(f"lab: {m}"))
    if state.get("controlplanes") and Path(state["controlplanes"], "state.json").exists():
        try:
            controlplane.ClusterSet.load(state["controlplanes"]).close()
        except controlplane.ControlPlaneError as e:
            problems.append(str(e))
    shutil.rmtree(state_dir, ignore_errors=True)
    for p in problems:
        out(f"lab: {p}")
    out("lab: removed")
    return 0


def status(state_dir: Path = STATE_DIR, out=print) -> int:
    state = _read_state(state_dir)
    if not state.get("controlplanes"):
        out("lab: not running (make lab starts it)")
        return 1
    cset = controlplane.ClusterSet.load(state["controlplanes"])
    rows = [("cluster", "context", "apiserver", "version", "nodes", "namespaces", "identity")]
    for name in sorted(cset):
        cluster = cset[name]
        try:
            version = cluster.api("GET", "/version")["gitVersion"]
            nodes = str(len(cluster.api("GET", "/api/v1/nodes")["items"]))
            namespaces = str(len(cluster.api("GET", "/api/v1/namespaces")["items"]))
            ident = cluster.api("GET", "/api/v1/namespaces/kube-system/configmaps/cloud58-identity")
            identity = ident.get("data", {}).get("cluster", "-")
        except controlplane.ControlPlaneError as e:  # a cluster that does not answer is shown, not fatal
            version, nodes, namespaces, identity = f"down ({type(e).__name__})", "-", "-", "-"
        rows.append((name, name, cluster.server, version, nodes, namespaces, identity))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for dc, lines in sorted(state.get("bgp_summary", {}).items()):
        out(f"BGP fabric {dc}:")
        for line in lines:
            out(f"  {line}")
    recap = state.get("nodes", {}).get("recap")
    if recap:
        changed = sum(r["changed"] for r in recap.values())
        out(
            f"nodes: {len(recap)} containers given the node roles in {state['nodes']['converge_s']} s "
            f"({changed} changes, 0 failed); podman exec -it {state['nodes']['containers'][0]} bash"
        )
    out(f"export KUBECONFIG={state['kubeconfig']}")
    return 0
