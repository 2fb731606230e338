# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The configuration of one Consul server of a datacenter, from the datacenter's servers (pure).

``server_config(name, servers, datacenter, settings)`` checks everything first and returns the
server's configuration as a dict (Consul reads it as JSON), the same dict for the same input:

* ``bootstrap_expect`` is the number of servers, which must be 3 or 5 (:data:`SERVER_COUNTS`):
  an even count tolerates no more failures than the odd count below it, and one server none;
* ``retry_join`` lists the other servers' addresses, in server-name order;
* gossip encryption is enforced both ways (``encrypt_verify_incoming``/``outgoing``); the key
  itself is *not* in this dict: it is a secret and goes into a file of its own (mode 0600)
  next to this one;
* TLS on RPC and on the HTTPS API, incoming and outgoing verified, with the servers' name
  ``server.<datacenter>.<domain>`` checked on RPC (``verify_server_hostname``); plain HTTP off;
* ACLs on with ``default_policy = deny``; tokens are created through the API, never here;
* DNS on ``client_addr`` (127.0.0.1 by default) for ``*.service.<domain>``;
* metrics in Prometheus' format on ``/v1/agent/metrics?format=prometheus`` (which needs
  ``telemetry.prometheus_retention_time`` above 0; the setting ``prometheus_retention_time``),
  without the host name in every metric's name (``disable_hostname``): Prometheus' ``consul``
  jobs label each target with its host (module_utils/monitoring/scrape.py).

``tests/network/test_consul_cluster.py`` runs three real servers with these configurations.
"""

from __future__ import annotations

import difflib
import ipaddress
import re

SERVER_COUNTS = (3, 5)
DEFAULT_SETTINGS = {
    "domain": "consul",
    "data_dir": "/var/lib/consul",
    "tls_dir": "/etc/consul.d/tls",
    "client_addr": "127.0.0.1",
    # Where the HTTPS API listens: an address, or unix:///path for a unix socket. Every address:
    # the datacenter's Prometheus scrapes each agent; clients need a certificate of the Consul CA.
    "https_address": "0.0.0.0",
    "https_port": 8501,
    "dns_port": 8600,
    # 1 is Consul's recommendation for production servers (its default of 5 suits laptops).
    "raft_multiplier": 1,
    "log_level": "info",
    # How long /v1/agent/metrics keeps a metric for Prometheus; it must exceed the scrape interval.
    "prometheus_retention_time": "60s",
}
LOG_LEVELS = ("trace", "debug", "info", "warn", "error")

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_PATH = re.compile(r"^/[\x21-\x7e]*$")
_DURATION = re.compile(r"^[1-9][0-9]*(s|m|h)$")


class ConsulError(ValueError):
    """Bad servers or settings of a Consul datacenter; the message names the host or setting."""


def _ipv4(value) -> bool:
    try:
        return isinstance(value, str) and ipaddress.IPv4Address(value).compressed == value
    except ValueError:
        return False


def _port(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _https_address(value) -> bool:
    if isinstance(value, str) and value.startswith("unix://"):
        return bool(_PATH.match(value[len("unix://") :]))
    return _ipv4(value)


# Every setting: a test of its value and what was expected.
_RULES = {
    "domain": (lambda v: isinstance(v, str) and bool(_DOMAIN.match(v)), "a DNS domain like consul"),
    "data_dir": (lambda v: isinstance(v, str) and bool(_PATH.match(v)), "an absolute path without spaces"),
    "tls_dir": (lambda v: isinstance(v, str) and bool(_PATH.match(v)), "an absolute path without spaces"),
    "client_addr": (_ipv4, "an IPv4 address"),
    "https_address": (_https_address, "an IPv4 address or unix:///absolute/path"),
    "https_port": (_port, "a port 1-65535"),
    "dns_port": (_port, "a port 1-65535"),
    "raft_multiplier": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10,
        "an integer 1-10",
    ),
    "log_level": (lambda v: v in LOG_LEVELS, f"one of {', '.join(LOG_LEVELS)}"),
    "prometheus_retention_time": (
        lambda v: isinstance(v, str) and bool(_DURATION.match(v)),
        "a duration above 0 like 60s, 5m",
    ),
}


def _did_you_mean(word, candidates) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _settings(settings) -> dict:
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise ConsulError(f"consul settings: expected a mapping, got {type(settings).__name__}")
    for key in sorted(settings, key=str):
        if key not in DEFAULT_SETTINGS:
            raise ConsulError(
                f"consul settings: unknown setting {key!r}{_did_you_mean(key, DEFAULT_SETTINGS)}"
            )
    merged = {**DEFAULT_SETTINGS, **settings}
    for key, value in merged.items():
        test, expected = _RULES[key]
        if not test(value):
            raise ConsulError(f"consul settings: {key}: expected {expected}, got {value!r}")
    return merged


def _servers(servers, datacenter: str) -> dict:
    if not isinstance(datacenter, str) or not _DNS_LABEL.match(datacenter):
        raise ConsulError(f"consul datacenter {datacenter!r}: expected a DNS label like bj1")
    if not isinstance(servers, dict):
        raise ConsulError(
            f"datacenter {datacenter!r}: consul servers: expected a mapping of host to address, "
            f"got {type(servers).__name__}"
        )
    seen = {}
    for host in sorted(servers, key=str):
        address = servers[host]
        where = f"datacenter {datacenter!r}: consul server {host!r}"
        if not isinstance(host, str) or not _DNS_LABEL.match(host):
            raise ConsulError(f"{where}: the name is not a DNS label")
        if not _ipv4(address):
            raise ConsulError(f"{where}: address {address!r} is not an IPv4 address")
        if address in seen:
            raise ConsulError(f"{where}: address {address} is taken by {seen[address]!r}")
        seen[address] = host
    if len(servers) not in SERVER_COUNTS:
        names = ", ".join(sorted(servers)) or "none"
        raise ConsulError(
            f"datacenter {datacenter!r}: {len(servers)} consul servers ({names}); expected 3 or 5 "
            "(an even count tolerates no more failures than the odd count below it)"
        )
    return servers


def server_config(name: str, servers: dict, datacenter: str, settings: dict | None = None) -> dict:
    """The configuration of server ``name`` among ``servers`` ({host: IPv4 address})."""
    servers = _servers(servers, datacenter)
    if name not in servers:
        raise ConsulError(
            f"host {name!r} is not a consul server of datacenter {datacenter!r}"
            f"{_did_you_mean(name, servers)}; its servers: {', '.join(sorted(servers))}"
        )
    s = _settings(settings)
    tls = s["tls_dir"].rstrip("/") or "/"
    address = servers[name]
    return {
        "node_name": name,
        "datacenter": datacenter,
        "domain": s["domain"],
        "server": True,
        "bootstrap_expect": len(servers),
        "data_dir": s["data_dir"],
        "bind_addr": address,
        "advertise_addr": address,
        "client_addr": s["client_addr"],
        "retry_join": [servers[other] for other in sorted(servers) if other != name],
        "addresses": {"https": s["https_address"]},
        "ports": {"http": -1, "https": s["https_port"], "dns": s["dns_port"], "grpc": -1, "grpc_tls": -1},
        "encrypt_verify_incoming": True,
        "encrypt_verify_outgoing": True,
        "tls": {
            "defaults": {
                "ca_file": f"{tls}/ca.crt",
                "cert_file": f"{tls}/server.crt",
                "key_file": f"{tls}/server.key",
                "verify_incoming": True,
                "verify_outgoing": True,
            },
            "internal_rpc": {"verify_server_hostname": True},
        },
        "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": False},
        "performance": {"raft_multiplier": s["raft_multiplier"]},
        "telemetry": {"prometheus_retention_time": s["prometheus_retention_time"], "disable_hostname": True},
        "disable_update_check": True,
        "log_level": s["log_level"],
    }
