# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The Calico objects of one cluster, as dicts (``crd.projectcalico.org/v1``).

:func:`calico_objects` is the producer the cluster renderer registers; it returns, sorted
by kind and name:

* ``BGPConfiguration/default``: node-to-node mesh off (the ToRs carry every route), the
  default AS (which no ToR accepts: every node speaks with its rack's AS from the node
  annotation ``projectcalico.org/ASNumber``, see :func:`calico_node_annotations`), and the
  service / LoadBalancer / external-IP ranges the nodes advertise;
* one ``BGPPeer`` per rack and ToR, selecting the rack's nodes by their
  ``cloud58.io/rack`` label (quoted: ``cloud58.io/rack == 'bj1-r01'``);
* one ``IPPool`` per rack (the planner's per-rack pool) with the rack's node selector and
  the cluster's block size, no overlay (IPIP and VXLAN ``Never``) and no NAT: pods are
  routable in the fabric;
* ``IPReservation`` objects for fixed-IP workloads (option ``fixed_ip_reservations``);
* ``FelixConfiguration/default``: the Felix settings that matter with LVS (see options.py).
"""

from __future__ import annotations

import ipaddress

from ..kube.objects import labels_for
from . import selector
from .fabric import RACK_LABEL, BgpError, datacenter_of_cluster, fabric_from_plan
from .options import bgp_options

API_VERSION = "crd.projectcalico.org/v1"
ASN_ANNOTATION = "projectcalico.org/ASNumber"
# Every kind calico_objects() emits (listed for pruning in cluster.yml).
CALICO_KINDS = ("BGPConfiguration", "BGPPeer", "FelixConfiguration", "IPPool", "IPReservation")


def _meta(name: str, cluster: str, **labels) -> dict:
    # the ownership labels of every rendered object: the engine prunes only what carries them
    return {"name": name, "labels": labels_for(cluster, labels)}


def _obj(kind: str, name: str, cluster: str, spec: dict, **labels) -> dict:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": _meta(name, cluster, **labels), "spec": spec}


def rack_selector(rack: str) -> str:
    return selector.equals(RACK_LABEL, rack)


def _reservations(cluster: str, pools: list, reservations: dict) -> list:
    objects = []
    for name, addresses in sorted((reservations or {}).items()):
        if not isinstance(addresses, list) or not addresses:
            raise BgpError(
                f"fixed_ip_reservations[{cluster}][{name}]: expected a non-empty list of addresses"
            )
        where = f"fixed_ip_reservations[{cluster}][{name}]"
        cidrs = []
        for address in addresses:
            try:
                net = ipaddress.ip_network(str(address))
            except ValueError as e:
                raise BgpError(
                    f"fixed_ip_reservations[{cluster}][{name}]: {address!r} is not an address"
                ) from e
            if not any(net.subnet_of(ipaddress.ip_network(p.cidr)) for p in pools):
                raise BgpError(
                    f"{where}: {net} is in no pod pool of the cluster ({', '.join(p.cidr for p in pools)})"
                )
            cidrs.append(str(net.network_address) if net.prefixlen == 32 else str(net))
        objects.append(
            _obj(
                "IPReservation",
                f"fixed-{name}",
                cluster,
                {"reservedCIDRs": sorted(set(cidrs), key=_addr_key)},
            )
        )
    return objects


def _addr_key(text: str):
    return ipaddress.ip_network(text)


def cluster_bgp_options(plan, cluster: str) -> dict:
    """The BGP options the plan carries for ``cluster``'s datacenter (the inventory's
    ``cloud58_bgp_options`` over the defaults; the defaults for a plan without them)."""
    dc = plan["datacenters"][datacenter_of_cluster(plan, cluster)]
    return bgp_options(dc.get("bgp_options"))


def calico_objects(plan, cluster: str, options=None) -> list:
    """Every Calico object of ``cluster``, from the plan; sorted by (kind, name).

    ``options``: BGP options over the defaults; None takes the options the plan carries
    for the cluster's datacenter (what ``clusters/`` is rendered with).
    """
    options = cluster_bgp_options(plan, cluster) if options is None else bgp_options(options)
    fabric = fabric_from_plan(plan, datacenter_of_cluster(plan, cluster))
    net = fabric.cluster(cluster)
    objects = []
    bgp_spec = {
        "nodeToNodeMeshEnabled": False,
        "asNumber": options["calico_default_asn"],
        "logSeverityScreen": "Info",
        "listenPort": 179,
    }
    if options["advertise_service_cluster_ips"]:
        bgp_spec["serviceClusterIPs"] = [{"cidr": net.service_cidr}]
    if options["service_external_ips"]:
        bgp_spec["serviceExternalIPs"] = [{"cidr": c} for c in options["service_external_ips"]]
    if options["service_loadbalancer_ips"]:
        bgp_spec["serviceLoadBalancerIPs"] = [{"cidr": c} for c in options["service_loadbalancer_ips"]]
    objects.append(_obj("BGPConfiguration", "default", cluster, bgp_spec))

    pools = fabric.pod_pools(cluster)
    for rack in fabric.racks:
        if not any(n.cluster == cluster for n in rack.nodes):
            continue
        for tor in rack.tors:
            spec = {
                "nodeSelector": rack_selector(rack.name),
                "peerIP": tor.address,
                "asNumber": tor.asn,
                "sourceAddress": "UseNodeIP",
            }
            if options["calico_max_restart_time"]:
                spec["maxRestartTime"] = options["calico_max_restart_time"]
            objects.append(_obj("BGPPeer", tor.name, cluster, spec, **{RACK_LABEL: rack.name}))
    for pool in pools:
        objects.append(
            _obj(
                "IPPool",
                f"{cluster}-{pool.rack}",
                cluster,
                {
                    "cidr": pool.cidr,
                    "blockSize": pool.block_size,
                    "nodeSelector": rack_selector(pool.rack),
                    "ipipMode": "Never",
                    "vxlanMode": "Never",
                    "natOutgoing": False,
                    "disabled": False,
                    "allowedUses": ["Workload"],
                },
                **{RACK_LABEL: pool.rack},
            )
        )
    objects += _reservations(cluster, pools, options["fixed_ip_reservations"].get(cluster, {}))
    objects.append(
        _obj(
            "FelixConfiguration",
            "default",
            cluster,
            {
                "bpfEnabled": False,
                "ipipEnabled": False,
                "vxlanEnabled": False,
                "disableConntrackInvalidCheck": options["felix_disable_conntrack_invalid_check"],
                "ipForwarding": "Enabled",
                "usageReportingEnabled": False,
                "logSeverityScreen": "Info",
            },
        )
    )
    return sorted(objects, key=lambda o: (o["kind"], o["metadata"]["name"]))


def calico_node_annotations(plan, cluster: str) -> dict:
    """``{node: {"projectcalico.org/ASNumber": "<rack AS>"}}`` for every node of ``cluster``.

    calico-node reads a node's own AS from this annotation on the Kubernetes Node (the
    Node object belongs to the kubelet, so it is annotated, not rendered).
    """
    fabric = fabric_from_plan(plan, datacenter_of_cluster(plan, cluster))
    return {
        node.name: {ASN_ANNOTATION: str(node.asn)}
        for node in sorted(fabric.nodes(cluster), key=lambda n: n.name)
    }
