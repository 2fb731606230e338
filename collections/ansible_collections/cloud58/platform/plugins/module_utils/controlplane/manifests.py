# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Static pod manifests of the control plane, as dicts, from the plan and the settings.

``host_manifests(cluster, host, settings)`` returns ``{file name: Pod}`` for one host:
``etcd.yaml`` on main etcd members, ``etcd-events.yaml`` on events etcd members,
``kube-apiserver.yaml``, ``kube-controller-manager.yaml`` and ``kube-scheduler.yaml`` on
masters. Flags are sorted, images come from one version (settings.image_for), every
container has startup, liveness and readiness probes, and every pod carries the labels
all cloud58 objects carry.

Paths on the host (``config_dir`` defaults to /etc/kubernetes)::

    <config_dir>/pki/...                        certificates, keys, encryption-config.yaml
    <config_dir>/{admin,controller-manager,scheduler}.conf    kubeconfigs (file references)
    <config_dir>/audit-policy.yaml
    <etcd_data_dir>, <etcd_events_data_dir>     etcd data
    <audit_log_dir>/audit.log
"""

from __future__ import annotations

from ..kube.objects import CLUSTER_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from .configs import kubeconfig
from .settings import image_for

NAMESPACE = "kube-system"
PKI_DIGEST_ANNOTATION = "cloud58.io/pki-digest"
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
MANIFEST_FILES = {
    "etcd": "etcd.yaml",
    "etcd-events": "etcd-events.yaml",
    "kube-apiserver": "kube-apiserver.yaml",
    "kube-controller-manager": "kube-controller-manager.yaml",
    "kube-scheduler": "kube-scheduler.yaml",
}


def _flags(base: dict, extra: dict) -> list:
    merged = dict(base)
    for key, value in (extra or {}).items():
        merged[key] = value
    return [f"--{key}={_text(value)}" for key, value in sorted(merged.items())]


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _host_path(name, path, kind):
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def _mount(name, path, read_only):
    out = {"name": name, "mountPath": path}
    if read_only:
        out["readOnly"] = True
    return out


def _probe(host, port, path, scheme, *, failure, period=10, initial=10, timeout=15):
    probe = {
        "httpGet": {"host": host, "port": port, "path": path, "scheme": scheme},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failure,
    }
    if initial:
        probe["initialDelaySeconds"] = initial
    return probe


def _probes(host, port, scheme, *, live, ready, startup):
    return {
        "startupProbe": _probe(host, port, startup, scheme, failure=24),
        "livenessProbe": _probe(host, port, live, scheme, failure=8),
        "readinessProbe": _probe(host, port, ready, scheme, failure=3, period=1, initial=0),
    }


def _pod(name, cluster, *, component, container, volumes, pki_digest):
    metadata = {
        "name": name,
        "namespace": NAMESPACE,
        "labels": {
            "component": component,
            "tier": "control-plane",
            MANAGED_BY_LABEL: MANAGED_BY_VALUE,
            CLUSTER_LABEL: cluster["name"],
        },
    }
    if pki_digest:
        # Certificates are files the pod reads at start: a renewal changes this digest,
        # the manifest changes with it, and the kubelet restarts the pod.
        metadata["annotations"] = {PKI_DIGEST_ANNOTATION: pki_digest}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": volumes,
        },
    }


def _member(cluster, kind, host):
    for member in cluster[kind]["members"]:
        if member["name"] == host:
            return member
    return None


def etcd_pod(cluster, host, settings, events=False, pki_digest=""):
    """The main etcd member on ``host`` (or, with ``events``, the events etcd member)."""
    kind = "etcd_events" if events else "etcd"
    member = _member(cluster, kind, host)
    if member is None:
        raise ValueError(f"host {host!r} is not a member of the {kind} cluster of {cluster['name']!r}")
    etcd = cluster[kind]
    name = "etcd-events" if events else "etcd"
    prefix = "events-" if events else ""
    pki = f"{settings['config_dir']}/pki/etcd"
    data_dir = settings["etcd_events_data_dir"] if events else settings["etcd_data_dir"]
    metrics_port = settings["etcd_events_metrics_port"] if events else settings["etcd_metrics_port"]
    flags = {
        "name": host,
        "data-dir": data_dir,
        "listen-client-urls": f"https://127.0.0.1:{etcd['client_port']},{member['client_url']}",
        "advertise-client-urls": member["client_url"],
        "listen-peer-urls": member["peer_url"],
        "initial-advertise-peer-urls": member["peer_url"],
        "initial-cluster": etcd["initial_cluster"],
        "initial-cluster-state": "new",
        "initial-cluster-token": f"{cluster['name']}-{name}",
        "listen-metrics-urls": f"http://127.0.0.1:{metrics_port}",
        "cert-file": f"{pki}/{prefix}server.crt",
        "key-file": f"{pki}/{prefix}server.key",
        "peer-cert-file": f"{pki}/{prefix}peer.crt",
        "peer-key-file": f"{pki}/{prefix}peer.key",
        "trusted-ca-file": f"{pki}/ca.crt",
        "peer-trusted-ca-file": f"{pki}/ca.crt",
        "client-cert-auth": True,
        "peer-client-cert-auth": True,
        "snapshot-count": settings["etcd_snapshot_count"],
        "quota-backend-bytes": settings["etcd_quota_backend_bytes"],
        "auto-compaction-mode": "periodic",
        "auto-compaction-retention": "8h",
    }
    container = {
        "name": name,
        "image": image_for(settings, "etcd"),
        "imagePullPolicy": "IfNotPresent",
        "command": ["etcd", *_flags(flags, settings["etcd_extra_args"])],
        "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}},
        "volumeMounts": [_mount("etcd-data", data_dir, False), _mount("etcd-certs", pki, True)],
        **_probes("127.0.0.1", metrics_port, "HTTP", live="/livez", ready="/readyz", startup="/readyz"),
    }
    volumes = [
        _host_path("etcd-data", data_dir, "DirectoryOrCreate"),
        _host_path("etcd-certs", pki, "Directory"),
    ]
    return _pod(name, cluster, component=name, container=container, volumes=volumes, pki_digest=pki_digest)


def _master_address(cluster, host):
    for endpoint in cluster["api"]["endpoints"]:
        if endpoint["name"] == host:
            return endpoint["address"], endpoint["port"]
    raise ValueError(f"host {host!r} is not a master of cluster {cluster['name']!r}")


def apiserver_pod(cluster, host, settings, pki_digest=""):
    address, port = _master_address(cluster, host)
    cfg = settings["config_dir"]
    pki = f"{cfg}/pki"
    events = ";".join(m["client_url"] for m in cluster["etcd_events"]["members"])
    flags = {
        "advertise-address": address,
        "allow-privileged": True,
        "anonymous-auth": True,  # /livez, /readyz for probes and load balancer checks only (RBAC)
        "audit-log-maxage": settings["audit_log_maxage"],
        "audit-log-maxbackup": settings["audit_log_maxbackup"],
        "audit-log-maxsize": settings["audit_log_maxsize"],
        "audit-log-path": f"{settings['audit_log_dir']}/audit.log",
        "audit-policy-file": f"{cfg}/audit-policy.yaml",
        "authorization-mode": "Node,RBAC",
        "bind-address": "0.0.0.0",
        "client-ca-file": f"{pki}/ca.crt",
        "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": True,
        "encryption-provider-config": f"{pki}/encryption-config.yaml",
        # Every apiserver keeps a lease; the `kubernetes` Service lists the live ones.
        "endpoint-reconciler-type": "lease",
        "etcd-cafile": f"{pki}/etcd/ca.crt",
        "etcd-certfile": f"{pki}/apiserver-etcd-client.crt",
        "etcd-keyfile": f"{pki}/apiserver-etcd-client.key",
        "etcd-servers": cluster["etcd"]["endpoints"],
        "etcd-servers-overrides": f"/events#{events}",
        "kubelet-client-certificate": f"{pki}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{pki}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "profiling": False,
        "proxy-client-cert-file": f"{pki}/front-proxy-client.crt",
        "proxy-client-key-file": f"{pki}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User",
        "secure-port": port,
        "service-account-issuer": f"https://kubernetes.default.svc.{settings['cluster_domain']}",
        "service-account-key-file": f"{pki}/sa.pub",
        "service-account-signing-key-file": f"{pki}/sa.key",
        "service-cluster-ip-range": cluster["service_cidr"],
        "tls-cert-file": f"{pki}/apiserver.crt",
        "tls-min-version": "VersionTLS12",
        "tls-private-key-file": f"{pki}/apiserver.key",
    }
    container = {
        "name": "kube-apiserver",
        "image": image_for(settings, "kube-apiserver"),
        "imagePullPolicy": "IfNotPresent",
        "command": ["kube-apiserver", *_flags(flags, settings["apiserver_extra_args"])],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
        "volumeMounts": [
            _mount("k8s-certs", pki, True),
            _mount("audit-policy", f"{cfg}/audit-policy.yaml", True),
            _mount("audit-log", settings["audit_log_dir"], False),
        ],
        **_probes(address, port, "HTTPS", live="/livez", ready="/readyz", startup="/livez"),
    }
    volumes = [
        _host_path("k8s-certs", pki, "Directory"),
        _host_path("audit-policy", f"{cfg}/audit-policy.yaml", "File"),
        _host_path("audit-log", settings["audit_log_dir"], "DirectoryOrCreate"),
    ]
    return _pod(
        "kube-apiserver",
        cluster,
        component="kube-apiserver",
        container=container,
        volumes=volumes,
        pki_digest=pki_digest,
    )


def _leader_flags(settings):
    le = settings["leader_election"]
    return {
        "leader-elect": True,
        "leader-elect-lease-duration": le["lease_duration"],
        "leader-elect-renew-deadline": le["renew_deadline"],
        "leader-elect-retry-period": le["retry_period"],
    }


def controller_manager_pod(cluster, host, settings, pki_digest=""):
    address, _port = _master_address(cluster, host)
    cfg = settings["config_dir"]
    pki = f"{cfg}/pki"
    conf = f"{cfg}/controller-manager.conf"
    ev = settings["eviction"]
    flags = {
        # Calico assigns pod addresses from its own pools (per rack); no node podCIDRs.
        "allocate-node-cidrs": False,
        "authentication-kubeconfig": conf,
        "authorization-kubeconfig": conf,
        # The master's address, not loopback: Prometheus on another host scrapes /metrics
        # (client certificate, RBAC by SubjectAccessReview); not every address either.
        "bind-address": address,
        "client-ca-file": f"{pki}/ca.crt",
        "cluster-name": cluster["name"],
        "cluster-signing-cert-file": f"{pki}/ca.crt",
        "cluster-signing-key-file": f"{pki}/ca.key",
        "controllers": "*,bootstrapsigner,tokencleaner",
        "kubeconfig": conf,
        "large-cluster-size-threshold": ev["large_cluster_size_threshold"],
        "node-eviction-rate": ev["node_eviction_rate"],
        "node-monitor-grace-period": ev["node_monitor_grace_period"],
        "profiling": False,
        "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt",
        "root-ca-file": f"{pki}/ca.crt",
        "secondary-node-eviction-rate": ev["secondary_node_eviction_rate"],
        "secure-port": CONTROLLER_MANAGER_PORT,
        "service-account-private-key-file": f"{pki}/sa.key",
        "service-cluster-ip-range": cluster["service_cidr"],
        "unhealthy-zone-threshold": ev["unhealthy_zone_threshold"],
        "use-service-account-credentials": True,
        **_leader_flags(settings),
    }
    container = {
        "name": "kube-controller-manager",
        "image": image_for(settings, "kube-controller-manager"),
        "imagePullPolicy": "IfNotPresent",
        "command": ["kube-controller-manager", *_flags(flags, settings["controller_manager_extra_args"])],
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}},
        "volumeMounts": [_mount("k8s-certs", pki, True), _mount("kubeconfig", conf, True)],
        **_probes(
            address,
            CONTROLLER_MANAGER_PORT,
            "HTTPS",
            live="/healthz",
            ready="/healthz",
            startup="/healthz",
        ),
    }
    volumes = [_host_path("k8s-certs", pki, "Directory"), _host_path("kubeconfig", conf, "File")]
    return _pod(
        "kube-controller-manager",
        cluster,
        component="kube-controller-manager",
        container=container,
        volumes=volumes,
        pki_digest=pki_digest,
    )


def scheduler_pod(cluster, host, settings, pki_digest=""):
    address, _port = _master_address(cluster, host)
    conf = f"{settings['config_dir']}/scheduler.conf"
    pki = f"{settings['config_dir']}/pki"
    files = [
        ("ca-cert", f"{pki}/ca.crt"),
        ("client-cert", f"{pki}/scheduler.crt"),
        ("client-key", f"{pki}/scheduler.key"),
    ]
    flags = {
        "authentication-kubeconfig": conf,
        "authorization-kubeconfig": conf,
        # As the controller-manager's: the master's address.
        "bind-address": address,
        "kubeconfig": conf,
        "profiling": False,
        "secure-port": SCHEDULER_PORT,
        **_leader_flags(settings),
    }
    container = {
        "name": "kube-scheduler",
        "image": image_for(settings, "kube-scheduler"),
        "imagePullPolicy": "IfNotPresent",
        "command": ["kube-scheduler", *_flags(flags, settings["scheduler_extra_args"])],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        # The kubeconfig names its certificate files: only those are mounted, not pki/.
        "volumeMounts": [_mount("kubeconfig", conf, True)] + [_mount(n, p, True) for n, p in files],
        **_probes(address, SCHEDULER_PORT, "HTTPS", live="/livez", ready="/readyz", startup="/livez"),
    }
    volumes = [_host_path("kubeconfig", conf, "File")] + [_host_path(n, p, "File") for n, p in files]
    return _pod(
        "kube-scheduler",
        cluster,
        component="kube-scheduler",
        container=container,
        volumes=volumes,
        pki_digest=pki_digest,
    )


def host_components(cluster, host):
    """The static pods ``host`` runs, in start order."""
    out = []
    if _member(cluster, "etcd", host):
        out.append("etcd")
    if _member(cluster, "etcd_events", host):
        out.append("etcd-events")
    if host in cluster["masters"]:
        out += ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    return out


def component_manifest(component, cluster, host, settings, pki_digest=""):
    if component == "etcd":
        return etcd_pod(cluster, host, settings, pki_digest=pki_digest)
    if component == "etcd-events":
        return etcd_pod(cluster, host, settings, events=True, pki_digest=pki_digest)
    builders = {
        "kube-apiserver": apiserver_pod,
        "kube-controller-manager": controller_manager_pod,
        "kube-scheduler": scheduler_pod,
    }
    return builders[component](cluster, host, settings, pki_digest=pki_digest)


def selected_components(cluster, host, components=None):
    """The components of ``host``, restricted to ``components`` when given."""
    wanted = host_components(cluster, host)
    if components is not None:
        unknown = sorted(set(components) - set(MANIFEST_FILES))
        if unknown:
            raise ValueError(f"unknown components {unknown} (known: {', '.join(MANIFEST_FILES)})")
        wanted = [c for c in wanted if c in components]
    return wanted


def host_manifests(cluster, host, settings, components=None, digests=None):
    """``{file name: Pod}`` of ``host`` (optionally only the given components); ``digests``
    maps a component to the digest of the PKI files it reads (component_pki_files)."""
    digests = digests or {}
    return {
        MANIFEST_FILES[c]: component_manifest(c, cluster, host, settings, digests.get(c, ""))
        for c in selected_components(cluster, host, components)
    }


def component_pki_files(component):
    """Files under ``<config_dir>/pki`` a component reads at start (its manifest's digest)."""
    pair = ("crt", "key")
    if component in ("etcd", "etcd-events"):
        prefix = "events-" if component == "etcd-events" else ""
        return ["etcd/ca.crt"] + [f"etcd/{prefix}{kind}.{ext}" for kind in ("server", "peer") for ext in pair]
    if component == "kube-apiserver":
        stems = ("apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client")
        return [
            "ca.crt",
            "etcd/ca.crt",
            "front-proxy-ca.crt",
            "sa.key",
            "sa.pub",
            "encryption-config.yaml",
            *[f"{stem}.{ext}" for stem in stems for ext in pair],
        ]
    if component == "kube-controller-manager":
        return [
            "ca.crt",
            "ca.key",
            "front-proxy-ca.crt",
            "sa.key",
            "controller-manager.crt",
            "controller-manager.key",
        ]
    if component == "kube-scheduler":
        return ["ca.crt", "scheduler.crt", "scheduler.key"]
    raise ValueError(f"unknown component {component!r}")


# The files besides manifests a component needs on its host (written with it).
COMPONENT_CONFIGS = {
    "kube-apiserver": ("admin.conf", "audit-policy.yaml"),
    "kube-controller-manager": ("controller-manager.conf",),
    "kube-scheduler": ("scheduler.conf",),
}


def host_kubeconfigs(cluster, host, settings):
    """``{file name: kubeconfig}`` of a master: its components talk to its own apiserver;
    admin.conf uses the cluster's API endpoint (``admin_server`` or the plan's server)."""
    address, port = _master_address(cluster, host)
    pki = f"{settings['config_dir']}/pki"
    local = f"https://{address}:{port}"
    clients = (
        ("admin.conf", settings["admin_server"] or cluster["api"]["server"], "admin", "cloud58-admin"),
        ("controller-manager.conf", local, "controller-manager", "system:kube-controller-manager"),
        ("scheduler.conf", local, "scheduler", "system:kube-scheduler"),
    )
    return {
        name: kubeconfig(
            cluster["context"],
            server,
            ca_file=f"{pki}/ca.crt",
            cert_file=f"{pki}/{stem}.crt",
            key_file=f"{pki}/{stem}.key",
            user=user,
        )
        for name, server, stem, user in clients
    }
