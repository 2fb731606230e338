"""A datacenter's BGP fabric, live in network namespaces, from the plan and the rendered configs.

``FabricLab(fabric, cluster, net)`` builds, on a :class:`~cloud58_lab.netlab.NetLab`:

* one L2 segment per rack (a bridge) holding the rack's two ToRs and its hosts;
* the ToR-to-core /31 links of the plan;
* FRR on every ToR and core with the configuration the role ``tor_router`` renders
  (its own ``frr.conf.j2``, filled by ``router_config``);
* BIRD on every host with the configuration calico-node derives from the rendered Calico
  objects (``node_speaker_config``), the block blackholes of the lab's IPAM, and one pod
  namespace per host wired the Calico way (proxy ARP, /32 route on a ``cali`` interface).

``FabricLab(..., bridge=..., containers=...)`` builds the same routers for the lab's host
containers (``make lab``): each rack's ToRs join the podman network's bridge that the
containers of every rack share (the ToRs keep their rack's prefix length, so a node reaches
only its own ToRs on-link), and each Kubernetes node's BIRD runs in that container's network
namespace, as calico-node's BIRD runs in the host's, with the same derived configuration. The
containers' own CNI configuration holds the pod addresses; BIRD announces the blocks and
installs what the ToRs tell it. The LVS directors are peers of the ToRs too, with their own
BIRD (the ``lvs_director`` role's).

``summary()`` returns sessions and learned routes per router for people (``make lab``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import (
    ASN_ANNOTATION,
    calico_node_annotations,
    router_config,
)
from cloud58_lab.calico_bird import block_assignment, node_speaker_config
from cloud58_lab.netlab import NetLab, wait_until

ROLE_TEMPLATES = (
    Path(__file__).resolve().parents[2]
    / "collections/ansible_collections/cloud58/platform/roles/tor_router/templates"
)


def render_frr(config: dict) -> str:
    """frr.conf text from router_config data, through the role's template (Ansible's Jinja settings)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE_TEMPLATES)),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("frr.conf.j2").render(tor_router_config=config)


@dataclass
class HostInLab:
    name: str
    rack: str
    address: str
    blocks: list
    pod: str
    pod_address: str


class FabricLab:
    """The routers and hosts of ``fabric`` in ``net``; hosts speak for ``cluster``'s Calico objects."""

    def __init__(
        self,
        fabric,
        plan,
        cluster: str,
        objects: list,
        net: NetLab,
        *,
        options=None,
        node_timers=None,
        bridge: str | None = None,
        containers: dict | None = None,
    ):
        """``bridge`` and ``containers`` (``{host: PID of its container's first process}``):
        the racks are that root-namespace bridge and the hosts those containers (see the
        module's docstring); without them, namespaces of the lab's own."""
        self.fabric = fabric
        self.bridge = bridge
        self.containers = dict(containers or {})
        self.cluster = cluster
        self.objects = objects
        self.net = net
        self.options = dict(options or {})
        self.node_timers = dict(node_timers or {})
        self.annotations = calico_node_annotations(plan, cluster)
        self.configs: dict[str, dict] = {}
        self.hosts: dict[str, HostInLab] = {}
        self.bird_configs: dict[str, str] = {}

    # ---- build ------------------------------------------------------------------------------
    def build(self) -> FabricLab:
        net = self.net
        for core in self.fabric.cores:
            net.add_namespace(core.name)
            net.exec(core.name, "ip", "address", "add", f"{core.address}/32", "dev", "lo")
        blocks = block_assignment(self.fabric, self.cluster)
        for rack in self.fabric.racks:
            prefixlen = ipaddress.ip_network(rack.node_subnet).prefixlen
            if self.bridge:
                for tor in rack.tors:
                    net.add_namespace(tor.name)
                    net.attach_bridge(self.bridge, tor.name, "eth0", f"{tor.address}/{prefixlen}")
            else:
                switch = f"{rack.name}-sw"
                net.add_switch(switch)
                members = [(t.name, t.address) for t in rack.tors] + [(n.name, n.address) for n in rack.nodes]
                for index, (name, address) in enumerate(members):
                    net.add_namespace(name)
                    net.attach(switch, name, "eth0", f"{address}/{prefixlen}", port=f"p{index}")
            for tor in rack.tors:
                for index, uplink in enumerate(tor.uplinks):
                    core_if = f"to-{tor.name}"[-15:]
                    net.link(
                        tor.name,
                        uplink.core,
                        if_a=f"up{index}",
                        if_b=core_if,
                        addr_a=f"{uplink.tor_address}/{uplink.prefixlen}",
                        addr_b=f"{uplink.core_address}/{uplink.prefixlen}",
                    )
            for index, node in enumerate(sorted(rack.nodes, key=lambda n: n.name)):
                if self.bridge:
                    if node.cluster == self.cluster and "lvs" not in node.roles:
                        self._adopt(node, blocks.get(node.name, []))
                    continue
                node_blocks = blocks.get(node.name, [])
                pod = f"{node.name}-pod"
                pod_address = (
                    str(ipaddress.ip_network(node_blocks[0]).network_address + 1) if node_blocks else ""
                )
                if node_blocks:
                    net.add_pod(node.name, pod, pod_address, host_if=f"cali{index:02d}pod")
                self.hosts[node.name] = HostInLab(
                    node.name, rack.name, node.address, node_blocks, pod, pod_address
                )
        for name in [t.name for t in self.fabric.tors()] + [c.name for c in self.fabric.cores]:
            self.configs[name] = router_config(self.fabric, name, self.options)
            net.start_frr(name, render_frr(self.configs[name]))
        for host in self.hosts.values():
            self.start_host(host.name)
        return self

    def _adopt(self, node, blocks: list) -> None:
        """Kubernetes node ``node``, a host container: its namespace joins the lab."""
        if node.name not in self.containers:
            raise ValueError(f"{node.name}: no host container given for this node of {self.cluster}")
        self.net.adopt_namespace(node.name, self.containers[node.name])
        self.hosts[node.name] = HostInLab(node.name, node.rack, node.address, blocks, "", "")

    def add_node(self, name: str, rack: str, address: str, labels: dict, pid: int) -> None:
        """A minion that joined after the fabric started (a scale-out), in the container of
        ``pid``: the rack's ToRs get the configuration ``tor_router`` renders with it (the lines
        it adds, through vtysh, so that no other session drops), its AS is its rack's (what
        reconcile annotates on its Node), and its BIRD starts with its block."""
        siblings = [
            n for n in self.fabric.rack(rack).nodes if n.cluster == self.cluster and "lvs" not in n.roles
        ]
        if not siblings:
            raise ValueError(f"{name}: rack {rack} has no node of {self.cluster} to take the AS from")
        node = replace(siblings[0], name=name, address=address, labels=tuple(sorted(labels.items())))
        racks = tuple(replace(r, nodes=(*r.nodes, node)) if r.name == rack else r for r in self.fabric.racks)
        self.fabric = replace(self.fabric, racks=racks)
        self.annotations[name] = dict(self.annotations[siblings[0].name])
        self.containers[name] = pid
        for tor in self.fabric.rack(rack).tors:
            before = render_frr(self.configs[tor.name]).splitlines()
            self.configs[tor.name] = router_config(self.fabric, tor.name, self.options)
            text = render_frr(self.configs[tor.name])
            added = [line.strip() for line in text.splitlines() if line not in before]
            if not added or not all(line.startswith(f"neighbor {address} ") for line in added):
                raise ValueError(f"{tor.name}: adding {name} changes more than its neighbor lines: {added}")
            self.net.configure_frr(tor.name, [f"router bgp {tor.asn}", *added], text)
        self._adopt(node, block_assignment(self.fabric, self.cluster)[name])
        self.start_host(name)
        wait_until(lambda: self.established(name), 60, 0.5, f"{name}: its BGP sessions Established")

    def node_facts(self, name: str) -> dict:
        node = next(n for n in self.fabric.nodes() if n.name == name)
        asn = self.annotations.get(name, {}).get(ASN_ANNOTATION)
        return {
            "name": name,
            "address": node.address,
            "labels": node.label_map,
            "asn": int(asn) if asn else None,
        }

    def start_host(self, name: str, extra: str = "", export_extra: str = "") -> str:
        """(Re)start BIRD on host ``name``; ``extra`` / ``export_extra`` tamper with its config (tests)."""
        text = node_speaker_config(
            self.objects, self.node_facts(name), self.hosts[name].blocks, self.node_timers
        )
        if export_extra:
            text = text.replace("  calico_aggr();\n", f"  calico_aggr();\n{export_extra}", 1)
        text += extra
        self.bird_configs[name] = text
        if name in self.net.routers:
            self.net.stop_router(name)
        self.net.start_bird(name, text)
        return text

    # ---- expectations and queries -----------------------------------------------------------------
    def expected_peers(self, name: str) -> set[str]:
        """Addresses router or host ``name`` must have a session with."""
        for tor in self.fabric.tors():
            if tor.name == name:
                rack = self.fabric.rack(tor.rack)
                return {n.address for n in rack.nodes} | {u.core_address for u in tor.uplinks}
        for core in self.fabric.cores:
            if core.name == name:
                return {u.tor_address for t in self.fabric.tors() for u in t.uplinks if u.core == name}
        host = self.hosts[name]
        return {t.address for t in self.fabric.rack(host.rack).tors}

    def established(self, name: str) -> bool:
        sessions = self.net.sessions(name)
        expected = self.expected_peers(name)
        return expected <= set(sessions) and all(sessions[p] == "Established" for p in expected)

    def wait_established(self, timeout: float = 60) -> None:
        names = list(self.configs) + list(self.hosts)
        wait_until(
            lambda: all(self.established(n) for n in names), timeout, 0.5, "every BGP session Established"
        )

    def expected_routes(self, name: str) -> set[str]:
        """Prefixes router or host ``name`` must have learnt by BGP once the fabric converged."""
        if name in self.hosts:
            # the pod routes of every other host (whether a host's own block comes back
            # depends on the mode: eBGP with as-override yes, a route reflector no)
            return {b for h in self.hosts.values() if h.name != name for b in h.blocks}
        blocks = {b for h in self.hosts.values() for b in h.blocks}
        return blocks | {r.node_subnet for r in self.fabric.racks}

    def wait_converged(self, timeout: float = 60) -> None:
        """Every session Established and every expected route learnt, everywhere."""
        self.wait_established(timeout)
        names = list(self.configs) + list(self.hosts)
        wait_until(
            lambda: all(self.expected_routes(n) <= self.net.bgp_prefixes(n) for n in names),
            timeout,
            0.5,
            "every router and host to learn the fabric's routes",
        )

    def summary(self) -> list[str]:
        """One line per router and host: sessions up/expected and the prefixes it learned by BGP."""
        lines = []
        for name in list(self.configs) + sorted(self.hosts):
            sessions = self.net.sessions(name)
            expected = self.expected_peers(name)
            up = sorted(p for p in expected if sessions.get(p) == "Established")
            prefixes = sorted(self.net.bgp_prefixes(name), key=ipaddress.ip_network)
            lines.append(
                f"{name}: {len(up)}/{len(expected)} sessions Established; {len(prefixes)} BGP routes: "
                + (", ".join(prefixes) or "none")
            )
        return lines


def start_datacenter(
    net: NetLab,
    inventory: str,
    datacenter: str,
    cluster: str,
    *,
    hosts=None,
    options=None,
    bridge: str | None = None,
    containers: dict | None = None,
) -> FabricLab:
    """Plan ``inventory``, then bring ``datacenter``'s ToRs, cores and hosts (all, or ``hosts``)
    up in ``net`` with the rendered configs, and wait until the fabric converged. With
    ``bridge`` and ``containers``, the hosts are the lab's host containers (the module's
    docstring), and the LVS directors peer with the ToRs too."""
    from ansible_collections.cloud58.platform.plugins.module_utils.bgp import calico_objects, fabric_from_plan
    from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

    plan = build_plan(load_inventory(inventory)).as_dict()
    fabric = fabric_from_plan(plan, datacenter)
    if hosts is not None:
        fabric = fabric.with_nodes(hosts)
    # only Kubernetes nodes of the cluster speak Calico's BGP in the lab; the directors of
    # the host containers speak for their VIPs
    directors = [n.name for n in fabric.nodes() if "lvs" in n.roles] if bridge else []
    fabric = fabric.with_nodes([n.name for n in fabric.nodes(cluster)] + directors)
    lab = FabricLab(
        fabric,
        plan,
        cluster,
        calico_objects(plan, cluster),
        net,
        # the datacenter's cloud58_bgp_options, as the tor_router role gets them, then the lab's
        options={
            **(plan["datacenters"][datacenter].get("bgp_options") or {}),
            "soft_reconfiguration": True,
            **(options or {}),
        },
        node_timers={"connect_retry": 2},
        bridge=bridge,
        containers=containers,
    )
    lab.build()
    try:
        lab.wait_converged()
    except TimeoutError as e:
        raise TimeoutError(f"{e}\n" + "\n".join(lab.summary())) from e
    return lab


def main(argv=None) -> int:
    """``python -m cloud58_lab.bgplab --dc lab1 --cluster lab1-k8s``: up, summary, down."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--inventory", default="inventories/lab")
    parser.add_argument("--dc", default="lab1")
    parser.add_argument("--cluster", default="lab1-k8s")
    args = parser.parse_args(argv)
    with NetLab() as net:
        lab = start_datacenter(net, args.inventory, args.dc, args.cluster)
        print("\n".join(lab.summary()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
