# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The Consul configuration of any host of the plan, and the checks of the role's inputs (pure).

The plan is read as plain data (``plan['hosts'][name]`` with ``datacenter``, ``address`` and
``roles``; a host of the inventory group ``consul_servers`` carries the role ``consul_server``);
nothing of the planner is imported.

* :func:`datacenter_servers`: ``{host: address}`` of a datacenter's servers;
* :func:`node_config`: a server's configuration (:func:`.servers.server_config`) plus the WAN
  join of the other datacenters' servers, or a client agent's (``server: false``) joining its
  datacenter's servers, with the same gossip, TLS, ACL and DNS settings. Every datacenter with
  servers is checked (3 or 5), whichever host asks, so a bad count fails on every host before
  any changes;
* :func:`agent_token`: the IDs of a node's agent token, derived from the management token, so
  the role writes the token into the agent's secrets file before Consul runs and creates it
  through the API afterwards, storing nothing more than the management token;
  :func:`agent_token_description` is the description it gets, and :func:`stale_agent_tokens`
  finds the agent tokens of hosts that left the plan;
* :func:`dns_token`: the IDs of the one token of DNS lookups (policy :data:`DNS_RULES`, read
  of nodes, services and prepared queries), derived the same way; the agents use it as their
  default token, so ``*.service.<domain>`` resolves under ACLs default-deny;
* :func:`prometheus_token`: the IDs of Prometheus' token (policy :data:`PROMETHEUS_RULES`,
  ``agent:read`` of every node, what ``/v1/agent/metrics`` requires), derived the same way;
* :func:`replication_token`: the IDs of the token a secondary datacenter's servers replicate
  the primary's ACLs with (policy :data:`REPLICATION_RULES`; a secondary server's configuration
  turns ``acl.enable_token_replication`` on), derived the same way;
* :func:`sync_token`: the IDs, policy name and rules of a cluster's cloud58-consul-sync token
  (``node:write`` of its node ``k8s-<cluster>`` alone and ``service:write``), derived the same way;
  :func:`sync_policy_description` records the cluster's datacenter in its policy, and
  :func:`stale_sync_policies` finds the policies of clusters that left the plan;
* :func:`secrets_problem` and :func:`install_problem`: one line naming the variable, or ``""``;
  a secret's value is never in the line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid

from .servers import _DNS_LABEL, ConsulError, _did_you_mean, _ipv4, _servers, _settings, server_config

SERVER_ROLE = "consul_server"
DNS_POLICY = "cloud58-dns"
DNS_RULES = (
    'node_prefix "" { policy = "read" }\n'
    'service_prefix "" { policy = "read" }\n'
    'query_prefix "" { policy = "read" }\n'
)
PROMETHEUS_POLICY = "cloud58-prometheus"
PROMETHEUS_RULES = 'agent_prefix "" { policy = "read" }\n'
# cloud58-gateway-sync (roles/haproxy_gateway, backend source runtime) reads every service's
# passing instances (/v1/health/service/<name>), which needs read of the services and their nodes.
GATEWAY_POLICY = "cloud58-gateway-sync"
GATEWAY_RULES = 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\n'
# cloud58-consul-sync (roles/consul_sync) of a cluster registers every instance on its one node
# k8s-<cluster> (discovery/catalog.py's node_name) with /v1/txn and reads that node back
# (/v1/catalog/node, /v1/health/node): write of that node and of services, whose names are
# the Services' annotations (any DNS label), so every service; nothing else.
SYNC_POLICY = "cloud58-consul-sync-{cluster}"
SYNC_RULES = 'node "k8s-{cluster}" {{ policy = "write" }}\nservice_prefix "" {{ policy = "write" }}\n'
# A secondary datacenter's servers copy the primary's ACL tokens, policies and roles with this
# token (acl.enable_token_replication, node_config), so tokens resolve there while the primary
# is unreachable. What Consul requires of a replication token: acl:write (the ACL objects),
# operator:write (the proxy-defaults configuration entry), service and intention read (the
# service-defaults entries and intentions).
REPLICATION_POLICY = "cloud58-replication"
REPLICATION_RULES = (
    'acl = "write"\noperator = "write"\nservice_prefix "" { policy = "read" intentions = "read" }\n'
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
_URL = re.compile(r"^https?://[^\s/]+/\S*$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _hosts(plan) -> dict:
    hosts = plan.get("hosts") if isinstance(plan, dict) else None
    if not isinstance(hosts, dict):
        raise ConsulError(f"expected a topology plan with a hosts mapping, got {type(plan).__name__}")
    return hosts


def datacenter_servers(plan, datacenter: str) -> dict:
    """``{host: address}`` of the consul servers of ``datacenter`` (the count not checked)."""
    return {
        name: host.get("address")
        for name, host in sorted(_hosts(plan).items())
        if host.get("datacenter") == datacenter and SERVER_ROLE in (host.get("roles") or ())
    }


def _all_servers(plan) -> dict:
    """``{datacenter: {host: address}}`` of every datacenter with servers, each checked."""
    datacenters = sorted(
        {h.get("datacenter") for h in _hosts(plan).values() if SERVER_ROLE in (h.get("roles") or ())},
        key=str,
    )
    everywhere = {dc: _servers(datacenter_servers(plan, dc), dc) for dc in datacenters}
    seen = {}
    for dc, members in everywhere.items():
        for name, address in members.items():
            if address in seen:
                other, other_dc = seen[address]
                raise ConsulError(
                    f"datacenter {dc!r}: consul server {name!r}: address {address} is taken by {other!r} "
                    f"of datacenter {other_dc!r}"
                )
            seen[address] = (name, dc)
    return everywhere


def node_config(plan, name: str, settings: dict | None = None, primary_datacenter: str | None = None) -> dict:
    """The configuration of host ``name``: a server if the plan gives it the role
    ``consul_server``, else a client agent of its datacenter. ``primary_datacenter`` (the
    datacenter whose servers hold the ACLs) defaults to the first datacenter with servers."""
    hosts = _hosts(plan)
    if name not in hosts:
        raise ConsulError(f"host {name!r} is not in the plan{_did_you_mean(name, hosts)}")
    host = hosts[name]
    datacenter = host.get("datacenter")
    everywhere = _all_servers(plan)
    if datacenter not in everywhere:
        raise ConsulError(f"host {name!r}: datacenter {datacenter!r} has no consul servers in the plan")
    if primary_datacenter is None:
        primary_datacenter = next(iter(everywhere))
    if primary_datacenter not in everywhere:
        raise ConsulError(
            f"consul primary datacenter {primary_datacenter!r} has no consul servers; "
            f"datacenters with servers: {', '.join(everywhere)}"
        )
    servers = everywhere[datacenter]
    if name in servers:
        config = server_config(name, servers, datacenter, settings)
        config["primary_datacenter"] = primary_datacenter
        if datacenter != primary_datacenter:  # with the secrets file's replication token
            config["acl"] = {**config["acl"], "enable_token_replication": True}
        config["retry_join_wan"] = [
            address for dc, members in everywhere.items() for address in members.values() if dc != datacenter
        ]
        return config
    address = host.get("address")
    if not _ipv4(address):
        raise ConsulError(f"host {name!r}: address {address!r} is not an IPv4 address")
    # The server's configuration minus what only servers have: the same gossip, TLS, ACL and DNS.
    config = server_config(sorted(servers)[0], servers, datacenter, settings)
    s = _settings(settings)
    tls = s["tls_dir"].rstrip("/") or "/"
    del config["bootstrap_expect"], config["performance"]
    config.update(
        node_name=name,
        server=False,
        bind_addr=address,
        advertise_addr=address,
        retry_join=list(servers.values()),
        primary_datacenter=primary_datacenter,
    )
    config["tls"]["defaults"].update(cert_file=f"{tls}/agent.crt", key_file=f"{tls}/agent.key")
    return config


def tls_names(plan, name: str, domain: str = "consul") -> list:
    """The DNS names of host ``name``'s certificate: ``server.<dc>.<domain>`` for a server
    (checked by the others with verify_server_hostname), ``client.<dc>.<domain>`` for an
    agent, then ``localhost`` (the role reaches the API on 127.0.0.1)."""
    hosts = _hosts(plan)
    if name not in hosts:
        raise ConsulError(f"host {name!r} is not in the plan{_did_you_mean(name, hosts)}")
    host = hosts[name]
    kind = "server" if SERVER_ROLE in (host.get("roles") or ()) else "client"
    return [f"{kind}.{host.get('datacenter')}.{domain}", "localhost"]


def secrets_problem(encrypt_key, management_token=None, tls=None) -> str:
    """What is wrong with the role's secrets, as one line naming the variable, or ``""``.
    The values are never shown."""
    try:
        raw = base64.b64decode(encrypt_key, validate=True) if isinstance(encrypt_key, str) else None
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or len(raw) != 32:
        return "consul_encrypt_key: expected 32 bytes in base64 (consul keygen); the value is not shown"
    if management_token is not None and not (
        isinstance(management_token, str) and _UUID.match(management_token)
    ):
        return "consul_acl_management_token: expected a UUID (uuidgen); the value is not shown"
    for variable, value in (tls or {}).items():
        kind = "PRIVATE KEY" if variable.endswith("_key") else "CERTIFICATE"
        if not (isinstance(value, str) and "-----BEGIN " in value and f"{kind}-----" in value):
            return f"{variable}: expected a PEM {kind.lower()}; the value is not shown"
    return ""


def install_problem(version, url, sha256) -> str:
    """What is wrong with the install variables, as one line naming the variable and value, or ``""``."""
    if not (isinstance(version, str) and _VERSION.match(version)):
        return f"consul_version: expected a version like 1.14.11, got {version!r}"
    if not version.startswith("1.14."):
        return (
            f"consul_version: {version} is not a 1.14.x release; later Consul releases are under the "
            "Business Source Licence (upstream/consul/README.md)"
        )
    if not (isinstance(url, str) and _URL.match(url)):
        return f"consul_url: expected the http(s) URL of the consul binary on your mirror, got {url!r}"
    if not (isinstance(sha256, str) and _SHA256.match(sha256)):
        return f"consul_sha256: expected 64 lowercase hex digits (sha256sum consul), got {sha256!r}"
    return ""


def _derived_uuid(key: str, label: str) -> str:
    digest = hmac.new(key.encode(), label.encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def agent_token(management_token: str, datacenter: str, node: str) -> dict:
    """``{AccessorID, SecretID}`` of node ``node``'s agent token: HMAC-SHA256 of the node under
    the management token, so the same inputs give the same token and nobody without the
    management token can compute it."""
    if not (isinstance(management_token, str) and _UUID.match(management_token)):
        raise ConsulError("consul agent token: the management token is not a UUID; the value is not shown")
    return {
        "AccessorID": _derived_uuid(management_token, f"cloud58 consul agent accessor {datacenter} {node}"),
        "SecretID": _derived_uuid(management_token, f"cloud58 consul agent secret {datacenter} {node}"),
    }


def agent_token_description(node: str) -> str:
    """The description of node ``node``'s agent token, which :func:`stale_agent_tokens` reads back."""
    return f"cloud58 agent token of {node}"


_AGENT_DESCRIPTION = re.compile(r"^cloud58 agent token of (?P<node>\S+)$")


def stale_agent_tokens(tokens, plan, management_token: str) -> list[dict]:
    """The agent tokens to revoke, from Consul's ``/v1/acl/tokens`` list: those of hosts that
    left the plan.

    A token is stale when it is one the role made (its description is
    :func:`agent_token_description` of a node, its one node identity names that node in a
    datacenter of ``plan``, and its AccessorID is :func:`agent_token`'s for them) and the plan
    has no host of that name in that datacenter. Each site.yml run sees one datacenter's
    inventory, so a token of another datacenter's node is never stale here, and a token made by
    hand (another description or AccessorID) is never touched. Returns ``[{"AccessorID", "node",
    "datacenter"}]`` sorted by datacenter and node.
    """
    if not isinstance(tokens, list):
        raise ConsulError(f"stale agent tokens: Consul's token list is not a list: {type(tokens).__name__}")
    hosts = _hosts(plan)
    datacenters = set((plan.get("datacenters") or {}) if isinstance(plan, dict) else ())
    planned = {(h.get("datacenter"), name) for name, h in hosts.items() if isinstance(h, dict)}
    stale = []
    for token in tokens:
        if not isinstance(token, dict):
            continue
        found = _AGENT_DESCRIPTION.match(str(token.get("Description") or ""))
        identities = token.get("NodeIdentities") or []
        if found is None or len(identities) != 1 or not isinstance(identities[0], dict):
            continue
        node, datacenter = identities[0].get("NodeName"), identities[0].get("Datacenter")
        if node != found["node"] or datacenter not in datacenters or (datacenter, node) in planned:
            continue
        if token.get("AccessorID") != agent_token(management_token, datacenter, node)["AccessorID"]:
            continue
        stale.append({"AccessorID": token["AccessorID"], "node": node, "datacenter": datacenter})
    return sorted(stale, key=lambda t: (t["datacenter"], t["node"]))


def _named_token(management_token: str, kind: str) -> dict:
    """``{AccessorID, SecretID}`` of the one token named ``kind``, derived from the management
    token like :func:`agent_token`."""
    if not (isinstance(management_token, str) and _UUID.match(management_token)):
        raise ConsulError(f"consul {kind} token: the management token is not a UUID; the value is not shown")
    return {
        "AccessorID": _derived_uuid(management_token, f"cloud58 consul {kind} accessor"),
        "SecretID": _derived_uuid(management_token, f"cloud58 consul {kind} secret"),
    }


def dns_token(management_token: str) -> dict:
    """``{AccessorID, SecretID}`` of the token of DNS lookups (policy :data:`DNS_POLICY`), derived
    from the management token like :func:`agent_token`."""
    return _named_token(management_token, "dns")


def prometheus_token(management_token: str) -> dict:
    """``{AccessorID, SecretID}`` of Prometheus' token (policy :data:`PROMETHEUS_POLICY`: read of
    every agent, for ``/v1/agent/metrics``), derived from the management token like :func:`agent_token`."""
    return _named_token(management_token, "prometheus")


def replication_token(management_token: str) -> dict:
    """``{AccessorID, SecretID}`` of the token a secondary datacenter's servers replicate the
    ACLs with (policy :data:`REPLICATION_POLICY`), derived from the management token like
    :func:`agent_token`."""
    return _named_token(management_token, "replication")


def gateway_token(management_token: str) -> dict:
    """``{AccessorID, SecretID}`` of cloud58-gateway-sync's token (policy :data:`GATEWAY_POLICY`:
    read of every service and node), derived from the management token like :func:`agent_token`."""
    return _named_token(management_token, "gateway")


def sync_policy_description(cluster: str, datacenter: str) -> str:
    """The description of cluster ``cluster``'s sync policy; it records the cluster's datacenter,
    which :func:`stale_sync_policies` reads back."""
    return (
        f"cloud58-consul-sync of cluster {cluster} in datacenter {datacenter}: its node k8s-{cluster} "
        "and services (role cloud58.platform.consul)"
    )


_SYNC_DESCRIPTION = re.compile(
    r"^cloud58-consul-sync of cluster (?P<cluster>\S+) in datacenter (?P<datacenter>\S+): "
)


def stale_sync_policies(policies, plan) -> list[dict]:
    """The cloud58-consul-sync policies to revoke, from Consul's ``/v1/acl/policies`` list.

    A policy is stale when its name is ``cloud58-consul-sync-<cluster>``, its description records
    (:func:`sync_policy_description`) that cluster and a datacenter of ``plan``, and the plan has
    no such cluster. Each site.yml run sees one datacenter's inventory, so a policy of another
    datacenter's cluster is never stale here; a policy whose description records no datacenter
    (written before it was recorded, or by hand) is never touched. Returns ``[{"ID", "Name",
    "cluster", "datacenter"}]`` sorted by name.
    """
    if not isinstance(policies, list):
        kind = type(policies).__name__
        raise ConsulError(f"stale sync policies: Consul's policy list is not a list: {kind}")
    datacenters = set((plan.get("datacenters") or {}) if isinstance(plan, dict) else ())
    clusters = set((plan.get("clusters") or {}) if isinstance(plan, dict) else ())
    stale = []
    for policy in policies:
        if not isinstance(policy, dict):
            continue
        found = _SYNC_DESCRIPTION.match(str(policy.get("Description") or ""))
        if found is None or policy.get("Name") != SYNC_POLICY.format(cluster=found["cluster"]):
            continue
        if found["datacenter"] in datacenters and found["cluster"] not in clusters:
            stale.append(
                {
                    "ID": policy.get("ID"),
                    "Name": policy["Name"],
                    "cluster": found["cluster"],
                    "datacenter": found["datacenter"],
                }
            )
    return sorted(stale, key=lambda p: p["Name"])


def sync_token(management_token: str, cluster: str) -> dict:
    """``{AccessorID, SecretID, Policy, Rules}`` of cluster ``cluster``'s cloud58-consul-sync token
    (policy :data:`SYNC_POLICY`: write of its node ``k8s-<cluster>`` and of services), derived
    from the management token like :func:`agent_token`."""
    if not (isinstance(management_token, str) and _UUID.match(management_token)):
        raise ConsulError("consul sync token: the management token is not a UUID; the value is not shown")
    if not isinstance(cluster, str) or not _DNS_LABEL.match(cluster):
        raise ConsulError(
            f"consul sync token: cluster: {cluster!r} is not a DNS label (a-z, 0-9, '-', at most 63)"
        )
    return {
        "AccessorID": _derived_uuid(management_token, f"cloud58 consul sync accessor {cluster}"),
        "SecretID": _derived_uuid(management_token, f"cloud58 consul sync secret {cluster}"),
        "Policy": SYNC_POLICY.format(cluster=cluster),
        "Rules": SYNC_RULES.format(cluster=cluster),
    }
