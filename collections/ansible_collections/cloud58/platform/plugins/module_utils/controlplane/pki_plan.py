# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Which certificates and keys a cluster needs, with their subjects, SANs and usages.

Pure data from the plan's cluster entry: ``pki_plan(cluster, settings)`` returns the CAs,
the leaf certificates (each naming its CA), the signing keys and, per host, which file of
the controller's PKI directory lands where under ``<config_dir>/pki`` on the host. Issuing
is ``module_utils/pki``'s job; nothing here touches a key.

Layout of a cluster's PKI directory on the controller (paths relative to it)::

    ca.{crt,key}                      Kubernetes CA (clients, kubelets, serving certs)
    front-proxy-ca.{crt,key}          aggregation layer CA
    etcd/ca.{crt,key}                 etcd CA (main and events etcd)
    apiserver.{crt,key}               serving: VIP, DNS names, masters, kubernetes.default...
    apiserver-kubelet-client.*        apiserver -> kubelets
    apiserver-etcd-client.*           apiserver -> both etcds
    front-proxy-client.*              apiserver -> extension apiservers
    admin.*, controller-manager.*, scheduler.*   kubeconfig clients
    prometheus.*, prometheus-etcd-client.*       the datacenter's Prometheus (not copied to
                                                 the masters: the role prometheus takes them)
    consul-sync.*                     cloud58-consul-sync -> apiserver (CONSUL_SYNC_USER; not
                                      copied to the masters: site.yml's consul_sync stage takes it)
    lvs-sync.*                        cloud58-lvs-sync -> apiserver (LVS_SYNC_USER; not copied to
                                      the masters: site.yml's lvs stage takes it to the directors)
    etcd/<host>-server.*, etcd/<host>-peer.*                 main etcd members
    etcd/<host>-events-server.*, etcd/<host>-events-peer.*   events etcd members
    kubelet/<node>.*                  each node's kubelet -> apiserver (system:node:<node>)
    agents/<minion>-<agent>.*         each minion's node agents -> apiserver (NODE_AGENTS)
    sa.key, sa.pub                    service-account token signing
    encryption-config.yaml            encryption at rest (secretbox key), 0600
"""

from __future__ import annotations

import ipaddress

CA_VALIDITY_DAYS = 3650
CERT_VALIDITY_DAYS = 365

KUBERNETES_CA = "ca"
ETCD_CA = "etcd/ca"
# The user Prometheus scrapes the control plane and the kubelets as (its certificate's CN).
PROMETHEUS_USER = "cloud58:prometheus"
# The user cloud58-consul-sync reads Services and EndpointSlices as (its certificate's CN; the
# ClusterRole cloud58-consul-sync, render/platform.py); one sync per cluster.
CONSUL_SYNC_USER = "cloud58:consul-sync"
CONSUL_SYNC_CERT = "consul-sync"
# The user cloud58-lvs-sync reads Services and EndpointSlices as, on every LVS director of the
# cluster's datacenter (ClusterRole cloud58-lvs-sync, render/platform.py).
LVS_SYNC_USER = "cloud58:lvs-sync"
LVS_SYNC_CERT = "lvs-sync"
# The node agents that talk to the API (role node_agents), each with a certificate per minion:
# user cloud58:<agent>:<node> in group cloud58:<agent>, the group bound to the agent's
# ClusterRole (render/platform.py).
NODE_AGENTS = ("netshaper", "overload", "crashkeeper", "loadannotator")


def agent_user(agent, node):
    """(user, group) of ``agent`` on ``node``."""
    return f"cloud58:{agent}:{node}", f"cloud58:{agent}"


FRONT_PROXY_CA = "front-proxy-ca"
ENCRYPTION_CONFIG = "encryption-config.yaml"
SA_KEY = "sa"


def _cert(name, ca, cn, *, orgs=(), dns=(), ips=(), usages=("client",)):
    return {
        "name": name,
        "ca": ca,
        "common_name": cn,
        "organizations": list(orgs),
        "dns_names": _unique(dns),
        "ip_addresses": _unique(ips),
        "usages": sorted(usages),
    }


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def split_sans(sans):
    """(DNS names, IP addresses) of a list of SAN strings."""
    dns, ips = [], []
    for san in sans:
        try:
            ips.append(str(ipaddress.ip_address(san)))
        except ValueError:
            dns.append(san)
    return dns, ips


def master_endpoints(cluster):
    """``[(name, address)]`` of the masters, in plan order."""
    return [(e["name"], e["address"]) for e in cluster["api"]["endpoints"]]


def apiserver_sans(cluster, settings):
    """(DNS names, IP addresses) of the apiserver's serving certificate."""
    domain = settings["cluster_domain"]
    masters = master_endpoints(cluster)
    extra_dns, extra_ips = split_sans(settings.get("extra_sans") or [])
    dns = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{domain}",
        cluster["api"]["dns_name"],
        "localhost",
        *[master[0] for master in masters],
        *extra_dns,
    ]
    ips = [
        cluster["kubernetes_service_ip"],
        cluster["api"]["vip"],
        *[master[1] for master in masters],
        "127.0.0.1",
        *extra_ips,
    ]
    return _unique(dns), _unique(ips)


def pki_plan(cluster, settings):
    """The cluster's CAs, certificates, signing keys and the files every host receives."""
    name = cluster["name"]
    cas = [
        {"name": KUBERNETES_CA, "common_name": f"{name}-kubernetes-ca"},
        {"name": ETCD_CA, "common_name": f"{name}-etcd-ca"},
        {"name": FRONT_PROXY_CA, "common_name": f"{name}-front-proxy-ca"},
    ]
    dns, ips = apiserver_sans(cluster, settings)
    certs = [
        _cert("apiserver", KUBERNETES_CA, "kube-apiserver", dns=dns, ips=ips, usages=("server",)),
        _cert(
            "apiserver-kubelet-client",
            KUBERNETES_CA,
            "kube-apiserver-kubelet-client",
            orgs=("system:masters",),
        ),
        _cert("apiserver-etcd-client", ETCD_CA, "kube-apiserver-etcd-client"),
        _cert("front-proxy-client", FRONT_PROXY_CA, "front-proxy-client"),
        _cert("admin", KUBERNETES_CA, "cloud58-admin", orgs=("system:masters",)),
        _cert("controller-manager", KUBERNETES_CA, "system:kube-controller-manager"),
        _cert("scheduler", KUBERNETES_CA, "system:kube-scheduler"),
        # The datacenter's Prometheus (role prometheus): /metrics of the apiservers, kubelets,
        # controller-managers and schedulers as this user (ClusterRole cloud58-prometheus,
        # render/platform.py), and of both etcds with the etcd CA's client certificate.
        _cert("prometheus", KUBERNETES_CA, PROMETHEUS_USER),
        _cert("prometheus-etcd-client", ETCD_CA, "cloud58-prometheus-etcd-client"),
        _cert(CONSUL_SYNC_CERT, KUBERNETES_CA, CONSUL_SYNC_USER),
        _cert(LVS_SYNC_CERT, KUBERNETES_CA, LVS_SYNC_USER),
    ]
    for kind, prefix in (("etcd", ""), ("etcd_events", "events-")):
        for member in cluster[kind]["members"]:
            host, address = member["name"], member["address"]
            certs.append(
                _cert(
                    f"etcd/{host}-{prefix}server",
                    ETCD_CA,
                    f"{host}-{prefix}etcd-server" if prefix else f"{host}-etcd-server",
                    dns=(host, "localhost"),
                    ips=(address, "127.0.0.1"),
                    usages=("client", "server"),
                )
            )
            certs.append(
                _cert(
                    f"etcd/{host}-{prefix}peer",
                    ETCD_CA,
                    f"{host}-{prefix}etcd-peer" if prefix else f"{host}-etcd-peer",
                    dns=(host,),
                    ips=(address,),
                    usages=("client", "server"),
                )
            )
    # The Node authorizer and NodeRestriction admit a kubelet by this name and group only.
    for node in cluster["nodes"]:
        certs.append(_cert(f"kubelet/{node}", KUBERNETES_CA, f"system:node:{node}", orgs=("system:nodes",)))
    for node in _minions(cluster):
        for agent in NODE_AGENTS:
            user, group = agent_user(agent, node)
            certs.append(_cert(f"agents/{node}-{agent}", KUBERNETES_CA, user, orgs=(group,)))
    return {
        "cluster": name,
        "cas": cas,
        "certs": certs,
        "signing_keys": [SA_KEY],
        "host_files": host_files(cluster),
    }


def _minions(cluster):
    return [n for n in cluster["nodes"] if n not in cluster["masters"]]


def host_files(cluster):
    """Per host: ``[{"src", "dest", "secret"}]`` — controller PKI path -> path under pki/ on the host."""
    out = {}

    def add(host, src, dest, secret):
        out.setdefault(host, []).append({"src": src, "dest": dest, "secret": secret})

    def pair(host, src, dest):
        add(host, f"{src}.crt", f"{dest}.crt", False)
        add(host, f"{src}.key", f"{dest}.key", True)

    for host in cluster["masters"]:
        pair(host, "ca", "ca")  # the key: kube-controller-manager signs kubelet CSRs
        add(host, "front-proxy-ca.crt", "front-proxy-ca.crt", False)
        add(host, "etcd/ca.crt", "etcd/ca.crt", False)
        for stem in (
            "apiserver",
            "apiserver-kubelet-client",
            "apiserver-etcd-client",
            "front-proxy-client",
            "admin",
            "controller-manager",
            "scheduler",
        ):
            pair(host, stem, stem)
        add(host, "sa.key", "sa.key", True)
        add(host, "sa.pub", "sa.pub", False)
        add(host, ENCRYPTION_CONFIG, ENCRYPTION_CONFIG, True)
    for kind, prefix in (("etcd", ""), ("etcd_events", "events-")):
        for member in cluster[kind]["members"]:
            host = member["name"]
            if not any(f["dest"] == "etcd/ca.crt" for f in out.get(host, [])):
                add(host, "etcd/ca.crt", "etcd/ca.crt", False)
            pair(host, f"etcd/{host}-{prefix}server", f"etcd/{prefix}server")
            pair(host, f"etcd/{host}-{prefix}peer", f"etcd/{prefix}peer")
    for node in cluster["nodes"]:
        if not any(f["dest"] == "ca.crt" for f in out.get(node, [])):
            add(node, "ca.crt", "ca.crt", False)  # the kubelet checks the apiserver with it
        pair(node, f"kubelet/{node}", "kubelet-client")
    for node in _minions(cluster):
        for agent in NODE_AGENTS:
            pair(node, f"agents/{node}-{agent}", agent)
    return {host: sorted(files, key=lambda f: f["dest"]) for host, files in sorted(out.items())}
