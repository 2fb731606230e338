# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Consul's catalog from Kubernetes: what ``cloud58-consul-sync`` decides, as pure functions.

Inputs are plain dicts as the APIs return them (``kubectl get -o json`` for Services and
EndpointSlices, Consul's ``/v1/catalog/node/<node>`` and ``/v1/health/node/<node>``).

* A Service is *registered* when it carries the annotation ``consul.cloud58.io/service``: the
  Consul service name (a DNS label). ``consul.cloud58.io/port`` names the Service port to
  register (required when the Service has more than one port). The version tag comes from
  the annotation ``consul.cloud58.io/version``, else the Service label
  ``app.kubernetes.io/version`` (none: no version tag).
* Its *instances* are the endpoints of its EndpointSlices (label
  ``kubernetes.io/service-name``, address type IPv4): one per address and the slice port of
  the registered port's name; health ``passing`` while the endpoint is ready (an unset
  ``ready`` counts as ready) and not terminating, ``critical`` otherwise.
* Every instance lives on one stable node per cluster, ``k8s-<cluster>`` (address
  127.0.0.1, like consul-k8s' ``k8s-sync``), with tags ``cluster=<c>``, ``datacenter=<dc>``,
  ``version=<v>`` and meta ``cloud58-sync: <cluster>`` (what this sync owns) and
  ``k8s-service: <ns>/<name>``.
* :func:`plan` compares the desired instances with the owned ones in Consul and returns the
  ``/v1/txn`` operations in batches of at most :data:`TXN_LIMIT`. An owned instance with no
  endpoint any more is *marked* first (health critical, meta ``cloud58-sync-gone: <time>``)
  and deleted only ``grace`` seconds later (sweep); an endpoint that comes back before that
  unmarks it. An instance of a Service whose annotations are bad is left as it is.
"""

from __future__ import annotations

import re

ANNOTATION_SERVICE = "consul.cloud58.io/service"
ANNOTATION_PORT = "consul.cloud58.io/port"
ANNOTATION_VERSION = "consul.cloud58.io/version"
VERSION_LABEL = "app.kubernetes.io/version"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
META_OWNER = "cloud58-sync"
META_SERVICE = "k8s-service"
META_GONE = "cloud58-sync-gone"
NODE_ADDRESS = "127.0.0.1"
CHECK_NAME = "Kubernetes readiness"
TXN_LIMIT = 64  # Consul's maximum of operations in one /v1/txn
PASSING, CRITICAL = "passing", "critical"
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class DiscoveryError(Exception):
    """Bad configuration of the sync itself (cluster or datacenter name)."""


def _meta(obj):
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or "", meta


def node_name(cluster):
    """The one catalog node of ``cluster``'s instances."""
    return f"k8s-{cluster}"


def check_settings(cluster, datacenter):
    """Refuse a cluster or datacenter name that is not a DNS label (one line, naming it)."""
    for field, value in (("cluster", cluster), ("datacenter", datacenter)):
        if not isinstance(value, str) or not _DNS_LABEL.match(value):
            raise DiscoveryError(f"{field}: {value!r} is not a DNS label (a-z, 0-9, '-', at most 63)")


def selected_services(services):
    """The Services registered in Consul: ``(claims, problems, refused)``.

    ``claims`` is ``{"ns/name": {"name": Consul name, "port": Service port name, "version":
    str or None}}``; ``problems`` are one-line messages naming the Service, the annotation
    and the value; ``refused`` the Services with a problem (their instances are left alone).
    Two Services claiming one Consul name: the first in namespace/name order keeps it."""
    claims, problems, refused, owner = {}, [], set(), {}
    for svc in sorted(services, key=lambda s: _meta(s)[:2]):
        namespace, name, meta = _meta(svc)
        annotations = meta.get("annotations") or {}
        consul_name = annotations.get(ANNOTATION_SERVICE)
        if consul_name is None:
            continue
        key = f"{namespace}/{name}"
        where = f"Service {key}: annotation {ANNOTATION_SERVICE}"
        if not isinstance(consul_name, str) or not _DNS_LABEL.match(consul_name):
            problems.append(
                f"{where}: {consul_name!r} is not a DNS label (a-z, 0-9, '-', at most 63); not registered"
            )
            refused.add(key)
            continue
        if consul_name in owner:
            problems.append(f"{where}: {consul_name!r} is already claimed by Service {owner[consul_name]}")
            refused.add(key)
            continue
        ports = [p.get("name") or "" for p in (svc.get("spec") or {}).get("ports") or []]
        wanted = annotations.get(ANNOTATION_PORT)
        if wanted is None:
            if len(ports) != 1:
                problems.append(
                    f"Service {key}: {len(ports)} ports ({', '.join(repr(p) for p in ports) or 'none'}) "
                    f"and no annotation {ANNOTATION_PORT} naming the one to register"
                )
                refused.add(key)
                continue
            wanted = ports[0]
        elif wanted not in ports:
            problems.append(
                f"Service {key}: annotation {ANNOTATION_PORT}: {wanted!r} is not a port of the Service "
                f"(ports: {', '.join(repr(p) for p in ports) or 'none'})"
            )
            refused.add(key)
            continue
        owner[consul_name] = key
        version = annotations.get(ANNOTATION_VERSION) or (meta.get("labels") or {}).get(VERSION_LABEL)
        claims[key] = {"name": consul_name, "port": wanted, "version": version}
    return claims, problems, refused


def instance_id(consul_name, address, port):
    return f"{consul_name}-{address}-{port}"


def desired_instances(services, slices, cluster, datacenter):
    """``(instances, problems, refused)``: ``instances`` is ``{ID: instance}`` of every
    registered Service's endpoints; an instance is ``{"ID", "Service", "Address", "Port",
    "Tags", "Meta", "Status"}``. An address in two slices (or twice) is one instance, passing
    if any copy is ready."""
    claims, problems, refused = selected_services(services)
    out = {}
    for sl in sorted(slices, key=lambda s: _meta(s)[:2]):
        namespace, _name, meta = _meta(sl)
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        claim = claims.get(f"{namespace}/{service}")
        if claim is None or sl.get("addressType") != "IPv4":
            continue
        numbers = [
            p.get("port")
            for p in sl.get("ports") or []
            if (p.get("name") or "") == claim["port"]
            and (p.get("protocol") or "TCP") == "TCP"
            and p.get("port") is not None
        ]
        tags = [f"cluster={cluster}", f"datacenter={datacenter}"]
        if claim["version"]:
            tags.append(f"version={claim['version']}")
        for endpoint in sl.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            ready = conditions.get("ready") is not False and conditions.get("terminating") is not True
            for address in endpoint.get("addresses") or []:
                for number in numbers:
                    ident = instance_id(claim["name"], address, number)
                    if ident in out and out[ident]["Status"] == PASSING:
                        continue
                    out[ident] = {
                        "ID": ident,
                        "Service": claim["name"],
                        "Address": address,
                        "Port": number,
                        "Tags": tags,
                        "Meta": {META_OWNER: cluster, META_SERVICE: f"{namespace}/{service}"},
                        "Status": PASSING if ready else CRITICAL,
                    }
    return dict(sorted(out.items())), problems, refused


def current_instances(node_services, node_checks, cluster):
    """The instances this sync owns in Consul, in the form of :func:`desired_instances`
    (meta ``cloud58-sync-gone`` kept): from ``/v1/catalog/node/<node>`` (``None`` when the
    node does not exist) and ``/v1/health/node/<node>``."""
    if not node_services:
        return {}
    status = {c.get("ServiceID"): c.get("Status") for c in node_checks or [] if c.get("ServiceID")}
    out = {}
    for ident, svc in (node_services.get("Services") or {}).items():
        meta = svc.get("Meta") or {}
        if meta.get(META_OWNER) != cluster:
            continue
        out[ident] = {
            "ID": ident,
            "Service": svc.get("Service"),
            "Address": svc.get("Address"),
            "Port": svc.get("Port"),
            "Tags": list(svc.get("Tags") or []),
            "Meta": dict(meta),
            "Status": status.get(ident, CRITICAL),
        }
    return dict(sorted(out.items()))


def _set_ops(node, instance):
    service = {k: instance[k] for k in ("ID", "Service", "Address", "Port", "Tags", "Meta")}
    check = {
        "Node": node,
        "CheckID": f"service:{instance['ID']}",
        "Name": CHECK_NAME,
        "Status": instance["Status"],
        "ServiceID": instance["ID"],
        "ServiceName": instance["Service"],
        "Output": "endpoint ready" if instance["Status"] == PASSING else "endpoint not ready or gone",
    }
    return [
        {"Service": {"Verb": "set", "Node": node, "Service": service}},
        {"Check": {"Verb": "set", "Check": check}},
    ]


def plan(desired, current, cluster, now, grace, *, refused=(), node_exists=True):
    """The writes taking Consul's owned instances ``current`` to ``desired`` at time ``now``
    (seconds): ``(batches, summary, next_sweep)``.

    ``batches`` are lists of ``/v1/txn`` operations, at most :data:`TXN_LIMIT` each, an
    instance's service and check always in the same batch; ``summary`` counts ``set``
    (new or changed), ``mark`` (gone, marked), ``sweep`` (marked ``grace`` seconds ago,
    deleted); ``next_sweep`` is when the next marked instance is due (None: none)."""
    node = node_name(cluster)
    units, summary, next_sweep = [], {"set": 0, "mark": 0, "sweep": 0}, None
    if not node_exists and desired:
        units.append(
            [
                {
                    "Node": {
                        "Verb": "set",
                        "Node": {"Node": node, "Address": NODE_ADDRESS, "Meta": {META_OWNER: cluster}},
                    }
                }
            ]
        )
    for ident, want in desired.items():
        have = current.get(ident)
        if have is None or any(
            have.get(k) != want[k] for k in ("Service", "Address", "Port", "Tags", "Meta", "Status")
        ):
            units.append(_set_ops(node, want))
            summary["set"] += 1
    for ident, have in current.items():
        if ident in desired or have["Meta"].get(META_SERVICE) in refused:
            continue
        gone = have["Meta"].get(META_GONE)
        try:
            since = float(gone) if gone is not None else None
        except ValueError:
            since = None
        if since is None:
            marked = {**have, "Meta": {**have["Meta"], META_GONE: f"{now:.3f}"}, "Status": CRITICAL}
            units.append(_set_ops(node, marked))
            summary["mark"] += 1
            due = now + grace
        elif now - since >= grace:
            gone_service = {"ID": ident, "Service": have["Service"]}
            units.append([{"Service": {"Verb": "delete", "Node": node, "Service": gone_service}}])
            summary["sweep"] += 1
            continue
        else:
            due = since + grace
        next_sweep = due if next_sweep is None else min(next_sweep, due)
    batches, batch = [], []
    for unit in units:
        if len(batch) + len(unit) > TXN_LIMIT:
            batches.append(batch)
            batch = []
        batch.extend(unit)
    if batch:
        batches.append(batch)
    return batches, summary, next_sweep


def apply_batch(current, batch, cluster):
    """``current`` after Consul applied ``batch`` (what the sync keeps between reads)."""
    out = dict(current)
    pending = {}
    for op in batch:
        if "Service" in op:
            body = op["Service"]
            if body["Verb"] == "delete":
                out.pop(body["Service"]["ID"], None)
            else:
                svc = body["Service"]
                pending[svc["ID"]] = {**svc, "Tags": list(svc["Tags"]), "Meta": dict(svc["Meta"])}
        elif "Check" in op:
            check = op["Check"]["Check"]
            ident = check["ServiceID"]
            out[ident] = {**pending.pop(ident, out.get(ident, {})), "Status": check["Status"]}
    for ident, svc in pending.items():
        out[ident] = {**svc, "Status": CRITICAL}
    return {k: v for k, v in sorted(out.items()) if v.get("Meta", {}).get(META_OWNER) == cluster}


class RateLimit:
    """At most ``per_second`` writes a second, evenly spaced: :meth:`delay` is how long the
    write wanted at ``now`` (seconds, monotonic) waits, and books it."""

    def __init__(self, per_second):
        self.gap = 1.0 / per_second
        self.last = None

    def delay(self, now):
        wait = 0.0 if self.last is None else max(0.0, self.last + self.gap - now)
        self.last = now + wait
        return wait


METRICS = (
    ("events_total", "counter", "Watch events of Services and EndpointSlices received."),
    ("relists_total", "counter", "Full lists again after a watch expired (410 Gone)."),
    ("kube_list_failures_total", "counter", "Lists the API server refused or that failed (each retried)."),
    ("kube_watch_failures_total", "counter", "Watches that failed before their end (each started again)."),
    ("reconciles_total", "counter", "Reconciliations of Consul's catalog with the cluster."),
    ("requests_total", "counter", "HTTP requests to Consul (reads and transactions)."),
    ("txn_total", "counter", "Transactions (/v1/txn) Consul accepted."),
    ("txn_operations_total", "counter", "Operations in the accepted transactions."),
    ("txn_failures_total", "counter", "Transactions refused or failed (each retried with backoff)."),
    ("registered_total", "counter", "Instances registered or changed."),
    ("marked_total", "counter", "Instances marked gone (critical, swept after the grace period)."),
    ("deregistered_total", "counter", "Instances deregistered by the sweep."),
    ("instances", "gauge", "Instances this sync owns in Consul."),
    ("problems", "gauge", "Services with a bad registration (logged, left as they are)."),
)


def prometheus_text(counters, cluster):
    """The sync's counters in the Prometheus text format (missing ones are 0)."""
    lines = []
    for name, kind, help_text in METRICS:
        metric = f"cloud58_consul_sync_{name}"
        lines += [
            f"# HELP {metric} {help_text}",
            f"# TYPE {metric} {kind}",
            f'{metric}{{cluster="{cluster}"}} {counters.get(name, 0)}',
        ]
    return "\n".join(lines) + "\n"
