# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Which certificates Consul needs (pure): one CA for every datacenter of the inventory (the
servers of all datacenters verify each other over the WAN), and per host of the plan one
certificate for server and client use with the names :func:`.nodes.tls_names` gives
(``server.<dc>.<domain>`` on servers, ``client.<dc>.<domain>`` on agents, then ``localhost``)
and 127.0.0.1, the address the role reaches the HTTPS API on; and Prometheus' client
certificate (:data:`PROMETHEUS`, client use only), which the prometheus role copies from
``<pki_dir>/consul/`` for its consul jobs (module_utils/monitoring/scrape.py), and
cloud58-consul-sync's (:data:`SYNC`, client use only), which site.yml's consul_sync stage copies
to the sync's host (Consul verifies every client's certificate).

The result has the shape of ``controlplane.pki_plan``'s (``cas``, ``certs``, ``signing_keys``,
``host_files``), so the controller's certificate store issues and renews both the same way.

Layout of the Consul PKI directory on the controller::

    ca.{crt,key}           the Consul CA
    hosts/<host>.{crt,key} each host's certificate and key
    prometheus.{crt,key}   Prometheus' client certificate and key
    consul-sync.{crt,key}  cloud58-consul-sync's client certificate and key (every cluster's)
"""

from __future__ import annotations

from .nodes import SERVER_ROLE, _hosts, tls_names

CA = "ca"
# Prometheus' client certificate (CLIENT_FILE_SOURCES["consul"] in monitoring/scrape.py names it).
PROMETHEUS = "prometheus"
# cloud58-consul-sync's client certificate (playbooks/site.yml, stage consul_sync).
SYNC = "consul-sync"


def consul_pki_plan(plan, domain: str = "consul") -> dict:
    """The Consul CA, one certificate per host of ``plan`` and the files each host receives."""
    hosts = _hosts(plan)
    certs, host_files = [], {}
    for name in sorted(hosts):
        dns = tls_names(plan, name, domain)
        certs.append(
            {
                "name": f"hosts/{name}",
                "ca": CA,
                "common_name": dns[0],
                "organizations": [],
                "dns_names": dns,
                "ip_addresses": ["127.0.0.1"],
                "usages": ["client", "server"],
            }
        )
        # The names the role's configuration gives them (module_utils/consul/servers.py, nodes.py).
        stem = "server" if SERVER_ROLE in (hosts[name].get("roles") or ()) else "agent"
        host_files[name] = [
            {"src": f"{CA}.crt", "dest": "ca.crt", "secret": False},
            {"src": f"hosts/{name}.crt", "dest": f"{stem}.crt", "secret": False},
            {"src": f"hosts/{name}.key", "dest": f"{stem}.key", "secret": True},
        ]
    for name in (PROMETHEUS, SYNC):
        certs.append(
            {
                "name": name,
                "ca": CA,
                "common_name": f"cloud58-{name}",
                "organizations": [],
                "dns_names": [],
                "ip_addresses": [],
                "usages": ["client"],
            }
        )
    return {
        "cas": [{"name": CA, "common_name": "cloud58-consul-ca"}],
        "certs": certs,
        "signing_keys": [],
        "host_files": host_files,
    }
