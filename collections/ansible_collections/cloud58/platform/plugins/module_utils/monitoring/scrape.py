# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The Prometheus configuration of one datacenter, computed from the plan.

``scrape_config(plan, datacenter, options)`` returns ``prometheus.yml`` as a dict: one scrape
job per target role and cluster, every target in a static config of its own labelled with
``datacenter``, ``cluster`` (when the host belongs to one), ``rack`` and ``host``.
``config_text`` lays it out as YAML, the same text for the same input.

Jobs, in this order (a job of a cluster is named ``<role>/<cluster>``; a relabel rule sets
the ``job`` label back to the role, so rules select ``job="etcd"`` whatever the cluster):

==========================  ===========================================  ======  ===========
role                        targets                                      scheme  client cert
==========================  ===========================================  ======  ===========
prometheus                  the server itself (localhost:9090)           http    no
node                        every host of the datacenter, node-exporter  http    no
podlogs                     every host of the datacenter, cloud58-podlogs http   no
kubelet                     every node of each cluster                   https   kubernetes
cadvisor                    every node of each cluster, the kubelet's    https   kubernetes
                            /metrics/cadvisor (per-container figures)
signals                     every node of each cluster, cloud58-signals  http    no
netshaper                   every node of each cluster, cloud58-netshaper http   no
overload                    every node of each cluster, cloud58-overload http    no
crashkeeper                 every node of each cluster, cloud58-crashkeeper http  no
etcd, etcd-events           each member's client URL (its /metrics)      https   etcd
kube-apiserver              each API endpoint of the plan                https   kubernetes
kube-controller-manager     each master                                  https   kubernetes
kube-scheduler              each master                                  https   kubernetes
haproxy                     each master's api_endpoint (its exporter)    http    no
haproxy-gateway             each ingress node's gateway (its exporter)   http    no
gateway-sync                each ingress node's cloud58-gateway-sync,    http    no
                            when a port is set
lvs                         each LVS director's exporter                 http    no
lvs-sync                    each LVS director's cloud58-lvs-sync,        http    no
                            when a port is set
consul                      every host's Consul agent, when a port set   https   consul
consul-sync                 each cluster's cloud58-consul-sync host,     http    no
                            when a port is set
==========================  ===========================================  ======  ===========

Both HAProxy jobs read HAProxy's built-in exporter (roles api_endpoint and haproxy_gateway,
port 8405 by default; a port of 0 here drops the job). ``haproxy-gateway`` targets the hosts
the plan labels ``function: ingress`` (:data:`INGRESS_FUNCTION`).

``consul`` is two jobs, ``consul/server`` (the datacenter's servers) and ``consul/client``
(every other host of the datacenter: each runs an agent), because each checks the name its
hosts' certificates carry (``server.<dc>.<domain>``, ``client.<dc>.<domain>``; they carry no
host address) through ``tls_config.server_name``. They read ``/v1/agent/metrics?format=
prometheus`` over HTTPS with a client certificate of the Consul CA (Consul verifies incoming
HTTPS) and an ACL token (``Authorization: Bearer``, read from ``consul_token_file``; the
policy needs ``agent:read``). Consul's HTTPS API listens on 127.0.0.1 by default
(``consul_https_address``), out of another host's reach, so the jobs exist only when
``consul_https_port`` is set: set it when the agents' HTTPS listens on their host address.

etcd's ``listen-metrics-urls`` (2381, 2384) is plain HTTP on 127.0.0.1 only
(controlplane/manifests.py), so a Prometheus on another host reads the same /metrics on the
client URL, over TLS with an etcd client certificate. Certificate paths may hold ``{cluster}``:
every cluster has its own CAs.

``podlogs`` reads the counters of the container log shipper (role log_shipper, which runs it
on every host of the plan, ``log_shipper_podlogs_metrics_listen``): lines shipped, batches
failed, records dropped from a full buffer. A port of 0 drops the job.

``signals`` (the node agent cloud58-signals, second-level CPU, load, memory and per-pod
figures) is the one job scraped at ``signals_scrape_interval`` (1 s), its timeout the same;
every other job at the global ``scrape_interval``.

``netshaper`` reads the node agent cloud58-netshaper (role node_agents,
``node_agents_netshaper_metrics_address``): the bandwidth limits it applied to each pod's veth
pair, the drops of its qdiscs and the PID limits it wrote. A port of 0 drops the job.
``overload`` and ``crashkeeper`` read the two other node agents of role node_agents
(``node_agents_overload_metrics_port``, ``node_agents_crashkeeper_metrics_port``): the node's
overloaded state, last load sample, thresholds and transitions; the container exits captured,
dumps by outcome and the crash sites kept against the budget. A port of 0 drops each.

``gateway-sync`` reads cloud58-gateway-sync on the same ingress nodes as ``haproxy-gateway``
(role haproxy_gateway with backend source runtime, ``haproxy_gateway_sync_metrics_port``): per
backend the answers read from Consul, the commands sent to HAProxy, the failed attempts and
the passing instances, and the reloads noticed. The port is 0 by default: no job.

``lvs-sync`` and ``consul-sync`` read the two programs that write the datacenter's data plane
from its clusters: cloud58-lvs-sync on each director (its per VIP and realserver counters,
role lvs_director, ``lvs_director_sync_metrics_port``) and cloud58-consul-sync (its register,
deregister and error counters per cluster, role consul_sync, ``consul_sync_metrics_port``) on
the hosts ``consul_sync_hosts`` names, the plan's hosts that run it (site.yml's filter of the
same name: one per cluster). Both programs are optional, so both ports are 0 by default: no
job. A host of ``consul_sync_hosts`` that is not in the plan is an error; one of another
datacenter is left out.

``jobs`` selects roles: empty (the default), every role that has targets in the datacenter; a
list, exactly those, and a listed role without a target there is an error (a role the plan
lacks). ``retention_time`` and ``retention_size`` are the server's flags
(``server_args``), checked here with the rest so a bad one fails before anything is written.
"""

from __future__ import annotations

import difflib
import json
import re

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - exercised only without PyYAML
    HAS_YAML = False

JOB_ROLES = (
    "prometheus",
    "node",
    "podlogs",
    "kubelet",
    "cadvisor",
    "signals",
    "netshaper",
    "overload",
    "crashkeeper",
    "etcd",
    "etcd-events",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "haproxy",
    "haproxy-gateway",
    "gateway-sync",
    "lvs",
    "lvs-sync",
    "consul",
    "consul-sync",
)
# Jobs whose scrapes carry the cluster's client certificate (the control plane).
KUBERNETES_JOBS = ("kubelet", "cadvisor", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The kubelet serves its cAdvisor's per-container figures on its own port at this path.
CADVISOR_PATH = "/metrics/cadvisor"
ETCD_JOBS = ("etcd", "etcd-events")

DEFAULT_OPTIONS = {
    "scrape_interval": "15s",
    "evaluation_interval": "15s",
    # The signals job's interval (and timeout): second-level figures for this job only.
    "signals_scrape_interval": "1s",
    # Roles to scrape; []: every role with targets in the datacenter.
    "jobs": [],
    # How long and how much the server keeps (--storage.tsdb.retention.*); size "": no limit.
    "retention_time": "15d",
    "retention_size": "",
    "rule_files": ["/etc/prometheus/rules/*.yml"],
    "listen_port": 9090,
    "node_exporter_port": 9100,
    # cloud58-podlogs' counters on every host (role log_shipper); 0: no job.
    "podlogs_port": 9661,
    "kubelet_port": 10250,
    # cloud58-signals on every node (agents/cloud58_signals.py, its default --listen port).
    "signals_port": 9112,
    # cloud58-netshaper on every node (role node_agents, its --metrics-port); 0: no job.
    "netshaper_port": 9659,
    # cloud58-overload and cloud58-crashkeeper on every node (role node_agents); 0: no job.
    "overload_port": 9662,
    "crashkeeper_port": 9663,
    # Equal to controlplane.manifests CONTROLLER_MANAGER_PORT and SCHEDULER_PORT (a test checks).
    "controller_manager_port": 10257,
    "scheduler_port": 10259,
    # HAProxy's built-in exporter: the masters' (role api_endpoint) and the ingress nodes'
    # (role haproxy_gateway); 0: no job.
    "haproxy_exporter_port": 8405,
    "haproxy_gateway_exporter_port": 8405,
    # cloud58-gateway-sync on the ingress nodes (role haproxy_gateway, backend source runtime,
    # haproxy_gateway_sync_metrics_port); 0: no job.
    "gateway_sync_port": 0,
    "lvs_exporter_port": 9110,
    # cloud58-lvs-sync on each director (role lvs_director, lvs_director_sync_metrics_port);
    # 0: no job (the sync is optional, lvs_director_sync).
    "lvs_sync_port": 0,
    # cloud58-consul-sync (role consul_sync, consul_sync_metrics_port) on the hosts listed;
    # 0: no job.
    "consul_sync_port": 0,
    "consul_sync_hosts": [],
    "kubernetes_ca_file": "/etc/prometheus/pki/{cluster}/ca.crt",
    "kubernetes_cert_file": "/etc/prometheus/pki/{cluster}/prometheus.crt",
    "kubernetes_key_file": "/etc/prometheus/pki/{cluster}/prometheus.key",
    "etcd_ca_file": "/etc/prometheus/pki/{cluster}/etcd-ca.crt",
    "etcd_cert_file": "/etc/prometheus/pki/{cluster}/etcd-client.crt",
    "etcd_key_file": "/etc/prometheus/pki/{cluster}/etcd-client.key",
    # Consul's HTTPS API on every host's address; 0: no consul job (Consul's default HTTPS
    # address is 127.0.0.1, which no other host reaches).
    "consul_https_port": 0,
    # Consul's DNS domain: the servers' certificates name server.<dc>.<domain>, the agents'
    # client.<dc>.<domain>.
    "consul_domain": "consul",
    "consul_ca_file": "/etc/prometheus/pki/consul/ca.crt",
    "consul_cert_file": "/etc/prometheus/pki/consul/prometheus.crt",
    "consul_key_file": "/etc/prometheus/pki/consul/prometheus.key",
    # The ACL token (policy agent:read) sent as Authorization: Bearer.
    "consul_token_file": "/etc/prometheus/consul-token",
    # Servers that present a self-signed certificate today (no serving certificate is issued
    # to kubelets, controller-managers and schedulers): the client certificate is still sent.
    "insecure_skip_verify_jobs": ["kubelet", "kube-controller-manager", "kube-scheduler"],
}
_PORTS = (
    "listen_port",
    "node_exporter_port",
    "kubelet_port",
    "signals_port",
    "controller_manager_port",
    "scheduler_port",
    "lvs_exporter_port",
)
# Ports whose 0 means "no job".
_OPTIONAL_PORTS = (
    "podlogs_port",
    "netshaper_port",
    "overload_port",
    "crashkeeper_port",
    "haproxy_exporter_port",
    "haproxy_gateway_exporter_port",
    "consul_https_port",
    "lvs_sync_port",
    "consul_sync_port",
    "gateway_sync_port",
)
_PATHS = tuple(k for k in DEFAULT_OPTIONS if k.endswith("_file"))
_INTERVALS = ("scrape_interval", "evaluation_interval", "signals_scrape_interval")
_RETENTION_TIME = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
# The plan label of the ingress nodes (equal to gateway.INGRESS_FUNCTION; a test checks).
INGRESS_FUNCTION = "ingress"
# The Consul role of a host in the plan (equal to consul.SERVER_ROLE; a test checks).
CONSUL_SERVER_ROLE = "consul_server"
_RETENTION_SIZE = re.compile(r"[1-9][0-9]*(?:B|KB|MB|GB|TB|PB|EB)")


class MonitoringError(ValueError):
    """A bad datacenter, option or plan for the monitoring configuration."""


def _did_you_mean(word, candidates) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _options(options) -> dict:
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise MonitoringError(f"monitoring options must be a mapping, got {type(options).__name__}")
    for key in options:
        if key not in DEFAULT_OPTIONS:
            raise MonitoringError(
                f"monitoring option {key!r} is unknown{_did_you_mean(key, DEFAULT_OPTIONS)}; "
                f"known: {', '.join(DEFAULT_OPTIONS)}"
            )
    merged = {**DEFAULT_OPTIONS, **options}
    for key in (*_PORTS, *_OPTIONAL_PORTS):
        value = merged[key]
        lowest = 0 if key in _OPTIONAL_PORTS else 1
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= 65535:
            raise MonitoringError(f"monitoring option {key}: expected a port {lowest}-65535, got {value!r}")
    for key in _PATHS:
        value = merged[key]
        if not isinstance(value, str) or not value.startswith("/"):
            raise MonitoringError(f"monitoring option {key}: expected an absolute path, got {value!r}")
    for key in _INTERVALS:
        value = merged[key]
        if (
            not isinstance(value, str)
            or not value[:-1].isdigit()
            or value[-1] not in "smh"
            or value[0] == "0"
        ):
            raise MonitoringError(f"monitoring option {key}: expected a duration like 15s, 1m, got {value!r}")
    rule_files = merged["rule_files"]
    if not isinstance(rule_files, list) or not all(
        isinstance(f, str) and f.startswith("/") for f in rule_files
    ):
        raise MonitoringError(
            f"monitoring option rule_files: expected a list of absolute paths, got {rule_files!r}"
        )
    retention = merged["retention_time"]
    if (
        not isinstance(retention, str)
        or not _RETENTION_TIME.fullmatch(retention)
        or not any(c in "123456789" for c in retention)
    ):
        raise MonitoringError(
            "monitoring option retention_time: expected a duration above 0 like 15d, 12h, 2w, "
            f"got {retention!r}"
        )
    size = merged["retention_size"]
    if not isinstance(size, str) or (size and not _RETENTION_SIZE.fullmatch(size)):
        raise MonitoringError(
            f"monitoring option retention_size: expected a size above 0 like 512MB, 50GB, or '' for no "
            f"limit, got {size!r}"
        )
    domain = merged["consul_domain"]
    if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
        raise MonitoringError(
            f"monitoring option consul_domain: expected a DNS domain like consul, got {domain!r}"
        )
    sync_hosts = merged["consul_sync_hosts"]
    if not isinstance(sync_hosts, list) or not all(isinstance(h, str) and h for h in sync_hosts):
        raise MonitoringError(
            f"monitoring option consul_sync_hosts: expected a list of host names, got {sync_hosts!r}"
        )
    _check_names(merged, "jobs", JOB_ROLES, expected="a list of roles", noun="scrape role", listing="roles")
    tls_jobs = (*KUBERNETES_JOBS, *ETCD_JOBS)
    _check_names(
        merged, "insecure_skip_verify_jobs", tls_jobs, expected="a list", noun="TLS job", listing="TLS jobs"
    )
    return merged


def _check_names(options, option, known, *, expected, noun, listing):
    """An option that lists names, each one of ``known``: the first bad entry is the error."""
    value = options[option]
    if not isinstance(value, list):
        raise MonitoringError(f"monitoring option {option}: expected {expected}, got {value!r}")
    for name in value:
        if name not in known:
            raise MonitoringError(
                f"monitoring option {option}: {name!r} is no {noun}{_did_you_mean(name, known)}; "
                f"{listing}: {', '.join(known)}"
            )


def _datacenter(plan, datacenter):
    if not isinstance(plan, dict) or not isinstance(plan.get("datacenters"), dict):
        raise MonitoringError(f"expected the plan (a mapping with 'datacenters'), got {type(plan).__name__}")
    try:
        return plan["datacenters"][datacenter]
    except (KeyError, TypeError):
        known = sorted(plan["datacenters"])
        raise MonitoringError(
            f"datacenter {datacenter!r} is not in the plan{_did_you_mean(datacenter, known)}; "
            f"datacenters: {', '.join(known)}"
        ) from None


def _host(plan, name, where):
    try:
        return plan["hosts"][name]
    except KeyError:
        raise MonitoringError(f"{where}: host {name!r} is not in the plan's hosts") from None


def _target(plan, name, port, where, address=None):
    host = _host(plan, name, where)
    labels = {"datacenter": host["datacenter"]}
    if host.get("cluster"):
        labels["cluster"] = host["cluster"]
    labels["rack"] = host["rack"]
    labels["host"] = name
    return {"targets": [f"{address or host['address']}:{port}"], "labels": labels}


def _job(role, cluster, targets, opts, scheme="http"):
    job = {"job_name": f"{role}/{cluster}" if cluster else role}
    if role == "signals":
        job["scrape_interval"] = job["scrape_timeout"] = opts["signals_scrape_interval"]
    if role == "cadvisor":
        job["metrics_path"] = CADVISOR_PATH
    job["scheme"] = scheme
    if scheme == "https":
        prefix = "etcd" if role in ETCD_JOBS else "kubernetes"
        tls = {
            key: opts[f"{prefix}_{key}"].replace("{cluster}", cluster)
            for key in ("ca_file", "cert_file", "key_file")
        }
        # cadvisor is the kubelet's server: its certificate is the kubelet's
        checked_as = "kubelet" if role == "cadvisor" else role
        if checked_as in opts["insecure_skip_verify_jobs"]:
            tls["insecure_skip_verify"] = True
        job["tls_config"] = tls
    job["static_configs"] = targets
    if cluster:
        job["relabel_configs"] = [{"target_label": "job", "replacement": role}]
    return job


def _consul_job(kind, targets, datacenter, opts):
    """``consul/<kind>``: the agents' metrics over HTTPS, checked against ``<kind>.<dc>.<domain>``."""
    return {
        "job_name": f"consul/{kind}",
        "metrics_path": "/v1/agent/metrics",
        "params": {"format": ["prometheus"]},
        "scheme": "https",
        "authorization": {"type": "Bearer", "credentials_file": opts["consul_token_file"]},
        "tls_config": {
            "ca_file": opts["consul_ca_file"],
            "cert_file": opts["consul_cert_file"],
            "key_file": opts["consul_key_file"],
            "server_name": f"{kind}.{datacenter}.{opts['consul_domain']}",
        },
        "static_configs": targets,
        "relabel_configs": [{"target_label": "job", "replacement": "consul"}],
    }


def _consul_jobs(plan, dc, datacenter, opts, where):
    """The two consul jobs of the datacenter (servers, agents), none without a port or servers."""
    consul = dc.get("consul") or {}
    servers = sorted(m["name"] for m in consul.get("servers") or [])
    if not opts["consul_https_port"] or not servers:
        return []
    port = opts["consul_https_port"]
    others = [h for h in sorted(dc["hosts"]) if h not in servers]
    consul_dc = consul.get("datacenter") or datacenter
    jobs = []
    for kind, hosts in (("server", servers), ("client", others)):
        if hosts:
            jobs.append(_consul_job(kind, [_target(plan, h, port, where) for h in hosts], consul_dc, opts))
    return jobs


def _member_port(member, where):
    url = member["client_url"]
    try:
        return int(url.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        raise MonitoringError(
            f"{where}: member {member['name']!r} has no port in its client URL {url!r}"
        ) from None


def _cluster_jobs(plan, name, opts):
    try:
        cluster = plan["clusters"][name]
    except KeyError:
        raise MonitoringError(f"cluster {name!r} of the datacenter is not in the plan's clusters") from None
    where = f"cluster {name}"
    jobs = {
        "kubelet": [_target(plan, h, opts["kubelet_port"], where) for h in cluster["nodes"]],
        "cadvisor": [_target(plan, h, opts["kubelet_port"], where) for h in cluster["nodes"]],
        "signals": [_target(plan, h, opts["signals_port"], where) for h in cluster["nodes"]],
        "etcd": [
            _target(plan, m["name"], _member_port(m, where), where, m["address"])
            for m in cluster["etcd"]["members"]
        ],
        "etcd-events": [
            _target(plan, m["name"], _member_port(m, where), where, m["address"])
            for m in (cluster.get("etcd_events") or {}).get("members", [])
        ],
        "kube-apiserver": [
            _target(plan, e["name"], e["port"], where, e["address"]) for e in cluster["api"]["endpoints"]
        ],
        "kube-controller-manager": [
            _target(plan, h, opts["controller_manager_port"], where) for h in cluster["masters"]
        ],
        "kube-scheduler": [_target(plan, h, opts["scheduler_port"], where) for h in cluster["masters"]],
    }
    for agent in ("netshaper", "overload", "crashkeeper"):
        if opts[f"{agent}_port"]:
            jobs[agent] = [_target(plan, h, opts[f"{agent}_port"], where) for h in cluster["nodes"]]
    if opts["haproxy_exporter_port"]:
        jobs["haproxy"] = [_target(plan, h, opts["haproxy_exporter_port"], where) for h in cluster["masters"]]
    return jobs


def scrape_config(plan, datacenter, options=None) -> dict:
    """``prometheus.yml`` of ``datacenter`` as a dict (see the module docstring)."""
    opts = _options(options)
    dc = _datacenter(plan, datacenter)
    where = f"datacenter {datacenter}"
    by_role = {
        "prometheus": [
            {"targets": [f"localhost:{opts['listen_port']}"], "labels": {"datacenter": datacenter}}
        ],
        "node": [_target(plan, h, opts["node_exporter_port"], where) for h in sorted(dc["hosts"])],
    }
    if opts["podlogs_port"]:
        by_role["podlogs"] = [_target(plan, h, opts["podlogs_port"], where) for h in sorted(dc["hosts"])]
    per_cluster = {name: _cluster_jobs(plan, name, opts) for name in sorted(dc.get("clusters") or [])}
    # the ingress nodes (the two gateway jobs) and the LVS directors (lvs, lvs-sync)
    ingress = [
        h
        for h in sorted(dc["hosts"])
        if (_host(plan, h, where).get("labels") or {}).get("function") == INGRESS_FUNCTION
    ]
    directors = sorted((((dc.get("lvs") or {}).get("directors")) or {}).items())
    for role, option in (
        ("haproxy-gateway", "haproxy_gateway_exporter_port"),
        ("gateway-sync", "gateway_sync_port"),
    ):
        if opts[option]:
            by_role[role] = [_target(plan, h, opts[option], where) for h in ingress]
    lvs = [_target(plan, name, opts["lvs_exporter_port"], where, d["address"]) for name, d in directors]
    if opts["lvs_sync_port"]:
        by_role["lvs-sync"] = [
            _target(plan, name, opts["lvs_sync_port"], where, d["address"]) for name, d in directors
        ]
    if opts["consul_sync_port"]:
        for name in opts["consul_sync_hosts"]:
            _host(plan, name, "monitoring option consul_sync_hosts")
        by_role["consul-sync"] = [
            _target(plan, name, opts["consul_sync_port"], where)
            for name in sorted(opts["consul_sync_hosts"])
            if plan["hosts"][name]["datacenter"] == datacenter
        ]
    jobs = []
    for role in JOB_ROLES:
        if role in by_role:
            if by_role[role]:
                jobs.append(_job(role, None, by_role[role], opts))
        elif role == "consul":
            jobs += _consul_jobs(plan, dc, datacenter, opts, where)
        elif role == "lvs":
            if lvs:
                jobs.append(_job(role, None, lvs, opts))
        else:
            scheme = "https" if role in (*KUBERNETES_JOBS, *ETCD_JOBS) else "http"
            for cluster, cluster_jobs in per_cluster.items():
                if cluster_jobs.get(role):
                    jobs.append(_job(role, cluster, cluster_jobs[role], opts, scheme))
    if opts["jobs"]:
        built = {job["job_name"].split("/")[0] for job in jobs}
        for role in opts["jobs"]:
            if role not in built:
                raise MonitoringError(
                    f"monitoring option jobs: role {role!r} has no target in datacenter {datacenter!r}"
                    f"{_WHY_NO_TARGET.get(role, '')}"
                )
        jobs = [job for job in jobs if job["job_name"].split("/")[0] in opts["jobs"]]
    return {
        "global": {
            "scrape_interval": opts["scrape_interval"],
            "evaluation_interval": opts["evaluation_interval"],
            "external_labels": {"datacenter": datacenter},
        },
        "rule_files": list(opts["rule_files"]),
        "scrape_configs": jobs,
    }


_WHY_NO_TARGET = {
    "podlogs": " (podlogs_port is 0)",
    "netshaper": " (netshaper_port is 0)",
    "overload": " (overload_port is 0)",
    "crashkeeper": " (crashkeeper_port is 0)",
    "haproxy": " (haproxy_exporter_port is 0)",
    "haproxy-gateway": " (no host labelled function: ingress there, or haproxy_gateway_exporter_port is 0)",
    "consul": " (consul_https_port is 0, or the plan has no Consul servers there)",
    "lvs": " (the plan has no LVS directors there)",
    "gateway-sync": " (no host labelled function: ingress there, or gateway_sync_port is 0)",
    "lvs-sync": " (lvs_sync_port is 0, or the plan has no LVS directors there)",
    "consul-sync": " (consul_sync_port is 0, or no host of consul_sync_hosts is there)",
}


# Where each file of a job's tls_config comes from: the controller's PKI of its cluster
# (<pki_dir>/<cluster>/..., controlplane/pki_plan.py's layout), or for Consul's the Consul PKI
# (its own directory, site.yml's site_consul_pki_dir, the layout of consul/pki.py). The keys
# are secrets.
CLIENT_FILE_SOURCES = {
    "kubernetes": {"ca_file": "ca.crt", "cert_file": "prometheus.crt", "key_file": "prometheus.key"},
    "etcd": {
        "ca_file": "etcd/ca.crt",
        "cert_file": "prometheus-etcd-client.crt",
        "key_file": "prometheus-etcd-client.key",
    },
    "consul": {"ca_file": "ca.crt", "cert_file": "prometheus.crt", "key_file": "prometheus.key"},
}


def client_files(plan, datacenter, options=None) -> list:
    """The certificate files the configuration of ``datacenter`` names, each with its source
    on the controller: ``[{"pki": "clusters" | "consul", "src": path, "dest": path, "secret":
    bool}]`` in ``dest`` order, for the jobs kept (option ``jobs``) only. ``src`` is relative
    to the clusters' PKI root (``<cluster>/<file>``) or to the Consul PKI (``<file>``). Two
    sources for one path (a certificate option without ``{cluster}`` while the datacenter has
    two clusters) fail."""
    opts = _options(options)
    out = {}
    for job in scrape_config(plan, datacenter, opts)["scrape_configs"]:
        role, _slash, cluster = job["job_name"].partition("/")
        tls = job.get("tls_config")
        if not tls or not cluster:
            continue
        prefix = "consul" if role == "consul" else "etcd" if role in ETCD_JOBS else "kubernetes"
        for key, source in CLIENT_FILE_SOURCES[prefix].items():
            pki, src = ("consul", source) if prefix == "consul" else ("clusters", f"{cluster}/{source}")
            entry = {"pki": pki, "src": src, "dest": tls[key], "secret": key == "key_file"}
            taken = out.setdefault(tls[key], entry)
            if (taken["pki"], taken["src"]) != (pki, src):
                raise MonitoringError(
                    f"monitoring option {prefix}_{key}: {opts[f'{prefix}_{key}']!r} is the same file "
                    f"for {taken['src']} and {entry['src']}; put {{cluster}} in it"
                )
    return [out[dest] for dest in sorted(out)]


def server_args(options=None) -> list:
    """The server's command-line flags for ``options`` (retention), checked like ``scrape_config``'s."""
    opts = _options(options)
    args = [f"--storage.tsdb.retention.time={opts['retention_time']}"]
    if opts["retention_size"]:
        args.append(f"--storage.tsdb.retention.size={opts['retention_size']}")
    return args


def config_text(config: dict) -> str:
    """``config`` as YAML: keys in the order built, block style, the same text for the same dict.

    The JSON round trip turns the subclasses of str and dict that Ansible hands in (tagged
    values) into the plain types the safe dumper knows."""
    if not HAS_YAML:  # pragma: no cover - the controller has PyYAML (ansible-core needs it)
        raise MonitoringError("writing prometheus.yml needs PyYAML: install python3-yaml")
    plain = json.loads(json.dumps(config))
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, width=1000)


def monitoring_hosts(plan) -> list:
    """The default Prometheus host of each datacenter: the first master of its first cluster
    (clusters in name order), else its first host by name; datacenters in name order."""
    if not isinstance(plan, dict) or not isinstance(plan.get("datacenters"), dict):
        raise MonitoringError(f"expected the plan (a mapping with 'datacenters'), got {type(plan).__name__}")
    chosen = []
    for name, dc in sorted(plan["datacenters"].items()):
        clusters = sorted(dc.get("clusters") or [])
        if clusters and plan["clusters"][clusters[0]]["masters"]:
            chosen.append(plan["clusters"][clusters[0]]["masters"][0])
        elif dc.get("hosts"):
            chosen.append(sorted(dc["hosts"])[0])
        else:
            raise MonitoringError(f"datacenter {name!r} has no host to run Prometheus on")
    return chosen
