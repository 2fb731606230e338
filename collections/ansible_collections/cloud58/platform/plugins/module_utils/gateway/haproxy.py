# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The haproxy.cfg of an ingress gateway, from its settings and services (pure).

``haproxy_config(services, settings)`` checks everything first and returns the text of
``haproxy.cfg``, the same text for the same input (services in name order). Per service:

* a frontend on its port with a stick table per client address: ``track-sc0 src`` and a deny
  (HTTP 429, or a rejected TCP connection) over ``rate_limit`` requests (connections in TCP
  mode) per ``rate_period``;
* a backend whose servers come from Consul DNS: ``server-template`` over the SRV name
  ``_<consul_service>._tcp.service.<domain>`` through the ``resolvers consul`` section (the
  local agent, 127.0.0.1:8600 by default), ``init-addr last,none`` so HAProxy starts (and
  ``haproxy -c`` checks) without any answer; ports come from the SRV records;
* active health checks (``option httpchk`` with the service's ``check_path``, else a TCP
  connect), ``slowstart``, per-server ``maxconn`` with a backend ``timeout queue``, and a
  circuit breaker: ``observe layer7`` (``layer4`` in TCP mode), ``error-limit`` and
  ``on-error mark-down``.

A frontend of its own (``metrics_address``:``metrics_port``, 8405 by default; port 0: none)
serves HAProxy's built-in Prometheus exporter (``http-request use-service
prometheus-exporter``) on ``metrics_path``, any other path 404; its requests are not logged.
Prometheus' ``haproxy-gateway`` job scrapes it (module_utils/monitoring/scrape.py).

Setting ``backend_source`` ``runtime`` (the default is ``dns``) renders no ``resolvers``
section and the same ``servers`` slots per backend as disabled servers named under ``.invalid``
(``server-template <name>- <servers> <name>.slot.invalid:1 disabled init-addr last,0.0.0.0``,
``runtime.slot_server``; a name, so that a reload restores each slot's address from the state
file): nothing in HAProxy fills them, the
program ``cloud58-gateway-sync`` does, over the stats socket (``set server ... addr``, ``state
ready|maint``), from Consul's passing instances (``gateway/runtime.py``).

Reloads keep the listening sockets: ``master-worker`` mode and ``expose-fd listeners`` on the
stats socket let the new worker take the old one's sockets; systemd's ``ExecReload`` (Debian's
unit: ``haproxy -c`` then USR2 to the master) starts it; the old worker finishes its
connections, for at most ``hard_stop_after``. Reloads keep the servers too: the role's
``ExecReload`` saves ``show servers state`` to ``server_state_file`` just before the USR2, and
the new worker starts from it (``load-server-state-from-file global``, ``init-addr last,none``).
Without it the new worker starts with every slot empty until its first DNS answer and answers
503 meanwhile (tests/network/test_haproxy_gateway_consul.py saw some on every reload).
"""

from __future__ import annotations

import difflib
import re

from .runtime import slot_server

DEFAULT_SETTINGS = {
    "bind_address": "0.0.0.0",
    "maxconn": 50000,
    "stats_socket": "/run/haproxy/admin.sock",
    "server_state_file": "/var/lib/haproxy/server-state",
    "hard_stop_after": "30m",
    # HAProxy's Prometheus exporter (a frontend of its own); port 0: none.
    "metrics_address": "0.0.0.0",
    "metrics_port": 8405,
    "metrics_path": "/metrics",
    # Who fills the servers' slots: HAProxy from Consul DNS (dns), or cloud58-gateway-sync
    # over the stats socket (runtime: no resolvers; module_utils/gateway/runtime.py).
    "backend_source": "dns",
    "resolver_address": "127.0.0.1",
    "resolver_port": 8600,
    "consul_domain": "consul",
    "resolve_hold_valid": "10s",
    "resolve_hold_obsolete": "30s",
    "timeout_connect": "5s",
    "timeout_client": "30s",
    "timeout_server": "30s",
    "timeout_check": "2s",
    "check_interval": "2s",
    "check_fall": 3,
    "check_rise": 2,
    # Defaults of every service; a service may set each of these for itself.
    "servers": 16,
    "server_maxconn": 100,
    "timeout_queue": "5s",
    "slowstart": "30s",
    "error_limit": 10,
    "rate_limit": 100,
    "rate_period": "10s",
    "stick_table_size": "100k",
}
# Settings a service may override, and what a service itself carries.
SERVICE_DEFAULTS = (
    "servers",
    "server_maxconn",
    "timeout_queue",
    "slowstart",
    "error_limit",
    "rate_limit",
    "rate_period",
)
SERVICE_FIELDS = ("name", "consul_service", "port", "mode", "check_path", *SERVICE_DEFAULTS)
MODES = ("http", "tcp")
BACKEND_SOURCES = ("dns", "runtime")

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_DURATION = re.compile(r"^[0-9]+(us|ms|s|m|h|d)$")
_SIZE = re.compile(r"^[1-9][0-9]*[kmg]?$")
_IPV4 = re.compile(r"^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$")
_PATH = re.compile(r"^/[\x21-\x7e]*$")
# A file the role's ExecReload names inside a shell command: no quote, no systemd specifier (%).
_FILE = re.compile(r"^/[A-Za-z0-9._/@+-]*$")
_INTS = {
    "maxconn": (1, 10_000_000),
    "resolver_port": (1, 65535),
    "metrics_port": (0, 65535),
    "check_fall": (1, 1000),
    "check_rise": (1, 1000),
    "servers": (1, 1024),
    "server_maxconn": (1, 1_000_000),
    "error_limit": (1, 1000),
    "rate_limit": (1, 10_000_000),
}
_DURATIONS = (
    "hard_stop_after",
    "resolve_hold_valid",
    "resolve_hold_obsolete",
    "timeout_connect",
    "timeout_client",
    "timeout_server",
    "timeout_check",
    "check_interval",
    "timeout_queue",
    "slowstart",
    "rate_period",
)


class GatewayError(ValueError):
    """Bad settings or services of a gateway; the message names the service and the field."""


def _did_you_mean(word, candidates) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _matches(pattern, *extra):
    return lambda value: isinstance(value, str) and (value in extra or bool(pattern.match(value)))


# Rules of the settings that are strings: a test of the value and what was expected.
_STRINGS = {
    "bind_address": (_matches(_IPV4, "*", "::"), "an IPv4 address, '*' or '::'"),
    "resolver_address": (_matches(_IPV4), "an IPv4 address"),
    "metrics_address": (_matches(_IPV4, "*", "::"), "an IPv4 address, '*' or '::'"),
    "metrics_path": (_matches(_PATH), "an absolute URL path without spaces"),
    "stats_socket": (_matches(_FILE), "an absolute path of letters, digits and . _ - / @ +"),
    "server_state_file": (_matches(_FILE), "an absolute path of letters, digits and . _ - / @ +"),
    "consul_domain": (_matches(_DOMAIN), "a DNS domain like consul"),
    "stick_table_size": (_matches(_SIZE), "a size like 100k or 1m"),
    "backend_source": (lambda value: value in BACKEND_SOURCES, "one of " + ", ".join(BACKEND_SOURCES)),
    **{key: (_matches(_DURATION), "a duration like 500ms, 10s, 1m") for key in _DURATIONS},
}


def _check_value(where: str, key: str, value) -> None:
    """One setting (of the gateway or a service) against its rule."""
    if key in _INTS:
        low, high = _INTS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise GatewayError(f"{where}{key}: expected an integer {low}-{high}, got {value!r}")
        return
    test, expected = _STRINGS[key]
    if not test(value):
        raise GatewayError(f"{where}{key}: expected {expected}, got {value!r}")


def _settings(settings) -> dict:
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise GatewayError(f"gateway settings must be a mapping, got {type(settings).__name__}")
    for key in settings:
        if key not in DEFAULT_SETTINGS:
            raise GatewayError(
                f"gateway setting {key!r} is unknown{_did_you_mean(key, DEFAULT_SETTINGS)}; "
                f"known: {', '.join(DEFAULT_SETTINGS)}"
            )
    merged = {**DEFAULT_SETTINGS, **settings}
    for key, value in merged.items():
        _check_value("gateway setting ", key, value)
    return merged


def _service(index: int, service, opts: dict) -> dict:
    if not isinstance(service, dict):
        raise GatewayError(f"services[{index}]: expected a mapping, got {type(service).__name__}")
    name = service.get("name")
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        raise GatewayError(
            f"services[{index}] name: expected a DNS label (a-z, 0-9, '-', at most 63), got {name!r}"
        )
    where = f"service {name!r} "
    for key in service:
        if key not in SERVICE_FIELDS:
            raise GatewayError(
                f"{where}field {key!r} is unknown{_did_you_mean(key, SERVICE_FIELDS)}; "
                f"known: {', '.join(SERVICE_FIELDS)}"
            )
    merged = {
        "consul_service": name,
        "mode": "http",
        "check_path": None,
        **{key: opts[key] for key in SERVICE_DEFAULTS},
        **service,
    }
    consul = merged["consul_service"]
    if not isinstance(consul, str) or not _DNS_LABEL.match(consul):
        raise GatewayError(
            f"{where}consul_service: expected a DNS label (a-z, 0-9, '-', at most 63), got {consul!r}"
        )
    port = merged.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise GatewayError(f"{where}port: expected a port 1-65535, got {port!r}")
    if merged["mode"] not in MODES:
        raise GatewayError(f"{where}mode: expected one of {', '.join(MODES)}, got {merged['mode']!r}")
    path = merged["check_path"]
    if path is not None:
        if merged["mode"] != "http":
            raise GatewayError(f"{where}check_path: only an http service has one, got {path!r} in tcp mode")
        if not isinstance(path, str) or not _PATH.match(path):
            raise GatewayError(
                f"{where}check_path: expected an absolute URL path without spaces, got {path!r}"
            )
    for key in SERVICE_DEFAULTS:
        _check_value(where, key, merged[key])
    return merged


def _services(services, opts: dict) -> list:
    if not isinstance(services, list):
        raise GatewayError(f"gateway services must be a list, got {type(services).__name__}")
    checked = [_service(i, s, opts) for i, s in enumerate(services)]
    seen = {}
    for index, service in enumerate(checked):
        for key in ("name", "consul_service", "port"):
            value = service[key]
            if (key, value) in seen:
                other, other_index = seen[(key, value)]
                raise GatewayError(
                    f"service {service['name']!r} (services[{index}]) {key}: {value!r} is taken by "
                    f"service {other!r} (services[{other_index}])"
                )
            seen[(key, value)] = (service["name"], index)
        if service["port"] == opts["metrics_port"]:
            raise GatewayError(
                f"service {service['name']!r} (services[{index}]) port: {service['port']} is taken by "
                "the Prometheus exporter (setting metrics_port)"
            )
    return sorted(checked, key=lambda s: s["name"])


def _global(opts: dict) -> list:
    lines = [
        "global",
        "    master-worker",
        "    log stdout format raw daemon",
        f"    maxconn {opts['maxconn']}",
        "    user haproxy",
        "    group haproxy",
        f"    hard-stop-after {opts['hard_stop_after']}",
        f"    stats socket {opts['stats_socket']} mode 660 level admin expose-fd listeners",
        "    stats timeout 30s",
        f"    server-state-file {opts['server_state_file']}",
        "",
        "defaults",
        "    log global",
        "    load-server-state-from-file global",
        "    option dontlognull",
        f"    timeout connect {opts['timeout_connect']}",
        f"    timeout client {opts['timeout_client']}",
        f"    timeout server {opts['timeout_server']}",
        f"    timeout check {opts['timeout_check']}",
        "",
    ]
    if opts["backend_source"] != "dns":
        return lines
    return [
        *lines,
        "resolvers consul",
        f"    nameserver consul {opts['resolver_address']}:{opts['resolver_port']}",
        "    accepted_payload_size 8192",
        "    resolve_retries 3",
        "    timeout resolve 1s",
        "    timeout retry 1s",
        f"    hold valid {opts['resolve_hold_valid']}",
        f"    hold obsolete {opts['resolve_hold_obsolete']}",
        "",
    ]


# The exporter's frontend: not a DNS label, so no service can have its name.
METRICS_FRONTEND = "cloud58_metrics"


def exporter_frontend(address, port, path) -> str:
    """The frontend of HAProxy's built-in Prometheus exporter as text ending in a newline,
    or ``""`` for port 0; the same frontend for any HAProxy of the project (the ingress
    gateways here, the masters' API endpoint through the filter ``haproxy_exporter_frontend``).
    Each value is checked as the gateway setting of the same name (``metrics_*``)."""
    opts = {"metrics_address": address, "metrics_port": port, "metrics_path": path}
    for key, value in opts.items():
        _check_value("", key, value)
    return "\n".join(_metrics(opts))


def _metrics(opts: dict) -> list:
    """The frontend of HAProxy's built-in Prometheus exporter, or nothing (port 0)."""
    if not opts["metrics_port"]:
        return []
    return [
        f"frontend {METRICS_FRONTEND}",
        "    mode http",
        f"    bind {opts['metrics_address']}:{opts['metrics_port']}",
        "    http-request set-log-level silent",
        f"    http-request use-service prometheus-exporter if {{ path {opts['metrics_path']} }}",
        "    http-request deny deny_status 404",
        "",
    ]


def _frontend(service: dict, opts: dict) -> list:
    name, mode, period = service["name"], service["mode"], service["rate_period"]
    if mode == "http":
        store, track = f"http_req_rate({period})", "http-request"
        deny = f"http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {service['rate_limit']} }}"
        log = "    option httplog"
    else:
        store, track = f"conn_rate({period})", "tcp-request connection"
        deny = f"tcp-request connection reject if {{ sc_conn_rate(0) gt {service['rate_limit']} }}"
        log = "    option tcplog"
    return [
        f"frontend {name}",
        f"    mode {mode}",
        log,
        f"    bind {opts['bind_address']}:{service['port']}",
        f"    stick-table type ip size {opts['stick_table_size']} expire {period} store {store}",
        f"    {track} track-sc0 src",
        f"    {deny}",
        f"    default_backend {name}",
        "",
    ]


def _backend(service: dict, opts: dict) -> list:
    name, mode = service["name"], service["mode"]
    lines = [
        f"backend {name}",
        f"    mode {mode}",
        "    balance leastconn",
        f"    timeout queue {service['timeout_queue']}",
    ]
    if service["check_path"]:
        lines += [
            "    option httpchk",
            f"    http-check send meth GET uri {service['check_path']}",
            "    http-check expect status 200",
        ]
    observe = "layer7" if mode == "http" else "layer4"
    if opts["backend_source"] == "dns":
        srv = f"_{service['consul_service']}._tcp.service.{opts['consul_domain']}"
        slots = f"{srv} resolvers consul resolve-prefer ipv4 init-addr last,none"
    else:  # empty and in maintenance until cloud58-gateway-sync sets them (gateway/runtime.py)
        slots = slot_server(name)
    lines += [
        f"    default-server check inter {opts['check_interval']} fall {opts['check_fall']}"
        f" rise {opts['check_rise']} slowstart {service['slowstart']} maxconn {service['server_maxconn']}"
        f" observe {observe} error-limit {service['error_limit']} on-error mark-down",
        f"    server-template {name}- {service['servers']} {slots}",
        "",
    ]
    return lines


def haproxy_config(services, settings=None) -> str:
    """The text of haproxy.cfg for ``services`` (a list of mappings) under ``settings``."""
    opts = _settings(settings)
    checked = _services(services, opts)
    source = {
        "dns": "Consul DNS (SRV)",
        "runtime": "Consul through the runtime API (cloud58-gateway-sync)",
    }[opts["backend_source"]]
    lines = [
        f"# Ingress gateway: backends from {source}, rendered by cloud58.platform",
        "# (module_utils/gateway/haproxy.py; docs/service-discovery.md).",
        *_global(opts),
        *_metrics(opts),
    ]
    for service in checked:
        lines += _frontend(service, opts) + _backend(service, opts)
    return "\n".join(lines).rstrip("\n") + "\n"


# The plan label of the hosts that run a gateway (the role refuses any other host).
INGRESS_FUNCTION = "ingress"


def gateway_hosts(plan) -> list:
    """The hosts of a topology plan labelled ``function: ingress``, in the plan's (name) order:
    the hosts of site.yml's gateway stage."""
    hosts = plan.get("hosts") if isinstance(plan, dict) else None
    if not isinstance(hosts, dict):
        raise GatewayError(
            f"gateway_hosts: expected a topology plan with a hosts mapping, got {type(plan).__name__}"
        )
    return [
        name
        for name, host in hosts.items()
        if isinstance(host, dict) and (host.get("labels") or {}).get("function") == INGRESS_FUNCTION
    ]
