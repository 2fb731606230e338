# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Checks that run on the controller before any host of a cluster is changed.

``preflight(plan, cluster, settings, running, kubelets)`` raises one
:class:`ControlPlaneError` listing every problem:

* the settings (types, ranges, durations, eviction and leader election tuning);
* etcd and events etcd: an odd member count (3 or 5; 1 only with the lab override), no two
  listeners of a host on the same port;
* the apiserver's SANs: extra names must be DNS names or IP addresses, no wildcards, no
  address inside the Service network other than the ``kubernetes`` Service's, and no name
  or address that belongs to another cluster's API or to a host that is not this cluster's
  master (a certificate valid for someone else's endpoint is a collision);
* versions: the skew policy for the upgrade, the kubelets and etcd (versions.py).

It returns what the roles need next: the checked settings, the images, the identity object.
"""

from __future__ import annotations

import ipaddress
import re

from .configs import identity_object
from .errors import ControlPlaneError
from .manifests import CONTROLLER_MANAGER_PORT, SCHEDULER_PORT
from .pki_plan import apiserver_sans, split_sans
from .settings import IMAGE_COMPONENTS, image_for, image_version, settings_from
from .versions import component_skew_problems, parse_version, skew_problems

_DNS = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def etcd_problems(cluster) -> list:
    problems = []
    allow_one = cluster.get("lab_overrides", {}).get("allow_fewer_than_3_masters", False)
    for kind, label in (("etcd", "etcd"), ("etcd_events", "events etcd")):
        members = cluster[kind]["members"]
        names = ", ".join(m["name"] for m in members)
        count = len(members)
        if count % 2 == 0:
            problems.append(
                f"{label} of cluster {cluster['name']!r} has {count} members ({names or 'none'}): "
                "etcd needs an odd number (3 or 5) — an even count adds a member without adding "
                "failure tolerance and a split vote can stall it"
            )
        elif count < 3 and not allow_one:
            problems.append(
                f"{label} of cluster {cluster['name']!r} has {count} member ({names}): at least 3 are "
                "needed to survive the loss of one (lab_overrides.allow_fewer_than_3_masters allows 1)"
            )
        elif count > 7:
            problems.append(
                f"{label} of cluster {cluster['name']!r} has {count} members: more than 7 slows every write "
                "without adding useful tolerance"
            )
    return problems


def port_problems(cluster, settings) -> list:
    """Listeners of one host that would share a port."""
    listeners = {}

    def add(host, port, what):
        listeners.setdefault(host, {}).setdefault(port, []).append(what)

    for kind, label, metrics in (
        ("etcd", "etcd", settings["etcd_metrics_port"]),
        ("etcd_events", "events etcd", settings["etcd_events_metrics_port"]),
    ):
        for m in cluster[kind]["members"]:
            add(m["name"], cluster[kind]["client_port"], f"{label} client")
            add(m["name"], cluster[kind]["peer_port"], f"{label} peer")
            add(m["name"], metrics, f"{label} metrics")
    for e in cluster["api"]["endpoints"]:
        add(e["name"], e["port"], "kube-apiserver")
        add(e["name"], CONTROLLER_MANAGER_PORT, "kube-controller-manager")
        add(e["name"], SCHEDULER_PORT, "kube-scheduler")
    problems = []
    for host in sorted(listeners):
        for port in sorted(listeners[host]):
            users = listeners[host][port]
            if len(users) > 1:
                problems.append(f"host {host!r}: port {port} is used by {' and '.join(users)}")
    return problems


def san_problems(plan, cluster, settings) -> list:
    problems = []
    extra = settings.get("extra_sans") or []
    extra_dns, extra_ips = split_sans(extra)
    for name in extra_dns:
        if "*" in name:
            problems.append(f"extra SAN {name!r}: wildcards are refused on the apiserver certificate")
        elif not _DNS.match(name):
            problems.append(f"extra SAN {name!r} is neither an IP address nor a lowercase DNS name")
    service = ipaddress.ip_network(cluster["service_cidr"])
    for ip in extra_ips:
        addr = ipaddress.ip_address(ip)
        if addr in service and ip != cluster["kubernetes_service_ip"]:
            problems.append(
                f"extra SAN {ip} lies in the Service network {service} of cluster {cluster['name']!r}: "
                "a Service would get that address and could present the apiserver's identity"
            )
    dns, ips = apiserver_sans(cluster, settings)
    mine = set(cluster["masters"])
    owners = {}
    for other_name, other in sorted(plan["clusters"].items()):
        if other_name == cluster["name"]:
            continue
        owners.setdefault(other["api"]["dns_name"], f"the API DNS name of cluster {other_name!r}")
        owners.setdefault(other["api"]["vip"], f"the API VIP of cluster {other_name!r}")
    for host_name, host in sorted(plan["hosts"].items()):
        if host_name in mine:
            continue
        owners.setdefault(host["address"], f"the address of host {host_name!r}")
        owners.setdefault(host_name, f"host {host_name!r}")
    for san in [*dns, *ips]:
        if san in owners:
            source = "an extra SAN" if san in extra else "a SAN from the plan"
            problems.append(
                f"apiserver certificate of cluster {cluster['name']!r}: {source} {san!r} collides with "
                f"{owners[san]}; the certificate would be valid for an endpoint that is not this cluster's"
            )
    return problems


def version_problems(settings, running, kubelets) -> list:
    problems = skew_problems(settings["version"], running, kubelets, settings["etcd_version"])
    overridden = {c: image_version(image_for(settings, c)) for c in IMAGE_COMPONENTS if c != "etcd"}
    for component, tag in sorted(overridden.items()):
        try:
            parse_version(tag, f"image of {component}")
        except ValueError as e:
            problems.append(f"{e} (image {image_for(settings, component)})")
            return problems
    problems += component_skew_problems(
        overridden["kube-apiserver"],
        {c: v for c, v in overridden.items() if c != "kube-apiserver"},
    )
    return problems


def preflight(plan, cluster_name, raw_settings, running=None, kubelets=None) -> dict:
    """Check everything before any host changes; the checked settings, images and identity."""
    where = f"cluster {cluster_name!r}"
    if cluster_name not in plan.get("clusters", {}):
        known = ", ".join(sorted(plan.get("clusters", {}))) or "none"
        raise ControlPlaneError(where, [f"not in the plan (clusters: {known})"])
    cluster = plan["clusters"][cluster_name]
    try:
        settings = settings_from(raw_settings, where)
    except ControlPlaneError as e:
        # Report setting problems together with the others that do not depend on them.
        raise ControlPlaneError(where, e.problems + etcd_problems(cluster)) from e
    problems = etcd_problems(cluster)
    problems += port_problems(cluster, settings)
    problems += san_problems(plan, cluster, settings)
    problems += version_problems(settings, running or {}, kubelets or {})
    if problems:
        raise ControlPlaneError(where, problems)
    return {
        "settings": settings,
        "images": {c: image_for(settings, c) for c in IMAGE_COMPONENTS},
        "identity": identity_object(cluster_name, cluster["datacenter"]),
    }
