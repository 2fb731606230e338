"""The haproxy.cfg of an ingress gateway (module_utils/gateway/haproxy.py, pure): exact
fragments per feature, deterministic output, and bad input refused by service and field.
The real `haproxy -c` runs on these configs in tests/unit/test_haproxy_gateway_check.py."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import (
    DEFAULT_SETTINGS,
    GatewayError,
    exporter_frontend,
    gateway_hosts,
    haproxy_config,
)

WEB = {"name": "web", "port": 8080, "check_path": "/healthz"}
PG = {"name": "db", "consul_service": "pg", "port": 5432, "mode": "tcp"}


def _section(text: str, header: str) -> list:
    """The lines of one section (``frontend web``), header included, up to the blank line."""
    lines = [*text.splitlines(), ""]
    start = lines.index(header)
    return lines[start : lines.index("", start)]


def test_global_defaults_and_resolvers_exactly():
    text = haproxy_config([WEB])
    assert _section(text, "global") == [
        "global",
        "    master-worker",
        "    log stdout format raw daemon",
        "    maxconn 50000",
        "    user haproxy",
        "    group haproxy",
        "    hard-stop-after 30m",
        "    stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners",
        "    stats timeout 30s",
        "    server-state-file /var/lib/haproxy/server-state",
    ]
    assert _section(text, "resolvers consul") == [
        "resolvers consul",
        "    nameserver consul 127.0.0.1:8600",
        "    accepted_payload_size 8192",
        "    resolve_retries 3",
        "    timeout resolve 1s",
        "    timeout retry 1s",
        "    hold valid 10s",
        "    hold obsolete 30s",
    ]


def test_prometheus_exporter_frontend_exactly():
    assert _section(haproxy_config([WEB]), "frontend cloud58_metrics") == [
        "frontend cloud58_metrics",
        "    mode http",
        "    bind 0.0.0.0:8405",
        "    http-request set-log-level silent",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    http-request deny deny_status 404",
    ]
    settings = {"metrics_address": "198.18.0.21", "metrics_port": 9101, "metrics_path": "/haproxy"}
    assert _section(haproxy_config([WEB], settings), "frontend cloud58_metrics")[2:5] == [
        "    bind 198.18.0.21:9101",
        "    http-request set-log-level silent",
        "    http-request use-service prometheus-exporter if { path /haproxy }",
    ]


def test_metrics_port_zero_renders_no_exporter():
    text = haproxy_config([WEB], {"metrics_port": 0})
    assert "frontend cloud58_metrics" not in text
    assert "prometheus-exporter" not in text
    assert "frontend cloud58_metrics\n" in haproxy_config([WEB])


def test_exporter_frontend_alone_is_the_gateways_text():
    """What the masters' API endpoint writes through the filter haproxy_exporter_frontend."""
    assert exporter_frontend("198.18.0.11", 9101, "/haproxy") == (
        "frontend cloud58_metrics\n"
        "    mode http\n"
        "    bind 198.18.0.11:9101\n"
        "    http-request set-log-level silent\n"
        "    http-request use-service prometheus-exporter if { path /haproxy }\n"
        "    http-request deny deny_status 404\n"
    )
    assert exporter_frontend("0.0.0.0", 0, "/metrics") == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("0.0.0.0", 70000, "/metrics"), "metrics_port: expected an integer 0-65535, got 70000", id="port"
        ),
        pytest.param(
            ("0.0.0.0", "8405", "/metrics"),
            "metrics_port: expected an integer 0-65535, got '8405'",
            id="port-str",
        ),
        pytest.param(
            ("master-1", 8405, "/metrics"),
            "metrics_address: expected an IPv4 address, '*' or '::', got 'master-1'",
            id="address",
        ),
        pytest.param(
            ("0.0.0.0", 8405, "metrics"),
            "metrics_path: expected an absolute URL path without spaces, got 'metrics'",
            id="path",
        ),
    ],
)
def test_exporter_frontend_refuses_a_bad_value_by_name(args, message):
    with pytest.raises(GatewayError) as e:
        exporter_frontend(*args)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("service", "header", "expected"),
    [
        pytest.param(
            WEB,
            "frontend web",
            [
                "frontend web",
                "    mode http",
                "    option httplog",
                "    bind 0.0.0.0:8080",
                "    stick-table type ip size 100k expire 10s store http_req_rate(10s)",
                "    http-request track-sc0 src",
                "    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100 }",
                "    default_backend web",
            ],
            id="http-frontend-rate-limit",
        ),
        pytest.param(
            WEB,
            "backend web",
            [
                "backend web",
                "    mode http",
                "    balance leastconn",
                "    timeout queue 5s",
                "    option httpchk",
                "    http-check send meth GET uri /healthz",
                "    http-check expect status 200",
                "    default-server check inter 2s fall 3 rise 2 slowstart 30s maxconn 100"
                " observe layer7 error-limit 10 on-error mark-down",
                "    server-template web- 16 _web._tcp.service.consul resolvers consul"
                " resolve-prefer ipv4 init-addr last,none",
            ],
            id="http-backend-httpchk-layer7",
        ),
        pytest.param(
            PG,
            "frontend db",
            [
                "frontend db",
                "    mode tcp",
                "    option tcplog",
                "    bind 0.0.0.0:5432",
                "    stick-table type ip size 100k expire 10s store conn_rate(10s)",
                "    tcp-request connection track-sc0 src",
                "    tcp-request connection reject if { sc_conn_rate(0) gt 100 }",
                "    default_backend db",
            ],
            id="tcp-frontend-connection-rate",
        ),
        pytest.param(
            PG,
            "backend db",
            [
                "backend db",
                "    mode tcp",
                "    balance leastconn",
                "    timeout queue 5s",
                "    default-server check inter 2s fall 3 rise 2 slowstart 30s maxconn 100"
                " observe layer4 error-limit 10 on-error mark-down",
                "    server-template db- 16 _pg._tcp.service.consul resolvers consul"
                " resolve-prefer ipv4 init-addr last,none",
            ],
            id="tcp-backend-connect-check-layer4-consul-name",
        ),
        pytest.param(
            {"name": "api", "port": 80},
            "backend api",
            [
                "backend api",
                "    mode http",
                "    balance leastconn",
                "    timeout queue 5s",
                "    default-server check inter 2s fall 3 rise 2 slowstart 30s maxconn 100"
                " observe layer7 error-limit 10 on-error mark-down",
                "    server-template api- 16 _api._tcp.service.consul resolvers consul"
                " resolve-prefer ipv4 init-addr last,none",
            ],
            id="http-without-path-checks-connect",
        ),
        pytest.param(
            {
                "name": "search",
                "port": 9200,
                "servers": 64,
                "server_maxconn": 20,
                "timeout_queue": "500ms",
                "slowstart": "2m",
                "error_limit": 3,
                "rate_limit": 5,
                "rate_period": "1s",
            },
            "backend search",
            [
                "backend search",
                "    mode http",
                "    balance leastconn",
                "    timeout queue 500ms",
                "    default-server check inter 2s fall 3 rise 2 slowstart 2m maxconn 20"
                " observe layer7 error-limit 3 on-error mark-down",
                "    server-template search- 64 _search._tcp.service.consul resolvers consul"
                " resolve-prefer ipv4 init-addr last,none",
            ],
            id="service-overrides-backend",
        ),
        pytest.param(
            {"name": "search", "port": 9200, "rate_limit": 5, "rate_period": "1s"},
            "frontend search",
            [
                "frontend search",
                "    mode http",
                "    option httplog",
                "    bind 0.0.0.0:9200",
                "    stick-table type ip size 100k expire 1s store http_req_rate(1s)",
                "    http-request track-sc0 src",
                "    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 5 }",
                "    default_backend search",
            ],
            id="service-overrides-rate",
        ),
    ],
)
def test_sections_per_service(service, header, expected):
    assert _section(haproxy_config([service]), header) == expected


@pytest.mark.parametrize(
    ("settings", "header", "line"),
    [
        pytest.param(
            {"resolver_port": 53, "resolver_address": "198.18.0.5"},
            "resolvers consul",
            "    nameserver consul 198.18.0.5:53",
            id="resolver",
        ),
        pytest.param(
            {"consul_domain": "dc1.consul"},
            "backend web",
            "    server-template web- 16 _web._tcp.service.dc1.consul resolvers consul"
            " resolve-prefer ipv4 init-addr last,none",
            id="domain",
        ),
        pytest.param({"bind_address": "198.18.0.21"}, "frontend web", "    bind 198.18.0.21:8080", id="bind"),
        pytest.param(
            {"server_state_file": "/var/lib/gw/state"},
            "global",
            "    server-state-file /var/lib/gw/state",
            id="state-file",
        ),
        pytest.param(
            {"stats_socket": "/run/gw.sock"},
            "global",
            "    stats socket /run/gw.sock mode 660 level admin expose-fd listeners",
            id="socket",
        ),
        pytest.param(
            {"check_interval": "5s", "check_fall": 2, "check_rise": 4, "servers": 8},
            "backend web",
            "    default-server check inter 5s fall 2 rise 4 slowstart 30s maxconn 100"
            " observe layer7 error-limit 10 on-error mark-down",
            id="checks",
        ),
    ],
)
def test_settings_reach_their_line(settings, header, line):
    assert line in _section(haproxy_config([WEB], settings), header)
    assert line not in _section(haproxy_config([WEB]), header)


def test_output_is_deterministic_and_in_name_order():
    one = haproxy_config([WEB, PG])
    assert one == haproxy_config([PG, WEB])
    assert one.index("frontend db\n") < one.index("backend db\n") < one.index("frontend web\n")
    assert one.endswith("init-addr last,none\n")
    assert not one.endswith("\n\n")


def test_no_service_renders_only_global_defaults_and_resolvers():
    text = haproxy_config([])
    assert [line for line in text.splitlines() if line and not line.startswith(" ")] == [
        "# Ingress gateway: backends from Consul DNS (SRV), rendered by cloud58.platform",
        "# (module_utils/gateway/haproxy.py; docs/service-discovery.md).",
        "global",
        "defaults",
        "resolvers consul",
        "frontend cloud58_metrics",
    ]


@pytest.mark.parametrize(
    ("services", "settings", "message"),
    [
        pytest.param(
            [{"name": "Web_1", "port": 80}],
            None,
            "services[0] name: expected a DNS label (a-z, 0-9, '-', at most 63), got 'Web_1'",
            id="name-not-dns",
        ),
        pytest.param(
            [{"name": "-web", "port": 80}],
            None,
            "services[0] name: expected a DNS label (a-z, 0-9, '-', at most 63), got '-web'",
            id="name-leading-dash",
        ),
        pytest.param(
            [{"name": "a" * 64, "port": 80}],
            None,
            f"services[0] name: expected a DNS label (a-z, 0-9, '-', at most 63), got {'a' * 64!r}",
            id="name-too-long",
        ),
        pytest.param(
            [{"port": 80}],
            None,
            "services[0] name: expected a DNS label (a-z, 0-9, '-', at most 63), got None",
            id="name-missing",
        ),
        pytest.param(
            [{"name": "web", "consul_service": "web.v2", "port": 80}],
            None,
            "service 'web' consul_service: expected a DNS label (a-z, 0-9, '-', at most 63), got 'web.v2'",
            id="consul-name-not-dns",
        ),
        pytest.param(
            [{"name": "web", "port": 65536}],
            None,
            "service 'web' port: expected a port 1-65535, got 65536",
            id="port-too-high",
        ),
        pytest.param(
            [{"name": "web", "port": 0}],
            None,
            "service 'web' port: expected a port 1-65535, got 0",
            id="port-zero",
        ),
        pytest.param(
            [{"name": "web", "port": "80"}],
            None,
            "service 'web' port: expected a port 1-65535, got '80'",
            id="port-string",
        ),
        pytest.param(
            [{"name": "web"}],
            None,
            "service 'web' port: expected a port 1-65535, got None",
            id="port-missing",
        ),
        pytest.param(
            [{"name": "web", "port": True}],
            None,
            "service 'web' port: expected a port 1-65535, got True",
            id="port-bool",
        ),
        pytest.param(
            [WEB, {"name": "web2", "consul_service": "web", "port": 8081}],
            None,
            "service 'web2' (services[1]) consul_service: 'web' is taken by service 'web' (services[0])",
            id="two-services-one-consul-name",
        ),
        pytest.param(
            [WEB, {"name": "web", "port": 8081}],
            None,
            "service 'web' (services[1]) name: 'web' is taken by service 'web' (services[0])",
            id="two-services-one-name",
        ),
        pytest.param(
            [WEB, {"name": "web2", "port": 8080}],
            None,
            "service 'web2' (services[1]) port: 8080 is taken by service 'web' (services[0])",
            id="two-services-one-port",
        ),
        pytest.param(
            [{"name": "web", "port": 80, "rate_limit": 0}],
            None,
            "service 'web' rate_limit: expected an integer 1-10000000, got 0",
            id="rate-limit-zero",
        ),
        pytest.param(
            [{"name": "web", "port": 80, "rate_limit": -5}],
            None,
            "service 'web' rate_limit: expected an integer 1-10000000, got -5",
            id="rate-limit-negative",
        ),
        pytest.param(
            [WEB],
            {"rate_limit": 0},
            "gateway setting rate_limit: expected an integer 1-10000000, got 0",
            id="setting-rate-limit-zero",
        ),
        pytest.param(
            [{"name": "web", "port": 80, "mode": "udp"}],
            None,
            "service 'web' mode: expected one of http, tcp, got 'udp'",
            id="mode",
        ),
        pytest.param(
            [{"name": "db", "port": 5432, "mode": "tcp", "check_path": "/"}],
            None,
            "service 'db' check_path: only an http service has one, got '/' in tcp mode",
            id="check-path-in-tcp",
        ),
        pytest.param(
            [{"name": "web", "port": 80, "check_path": "healthz"}],
            None,
            "service 'web' check_path: expected an absolute URL path without spaces, got 'healthz'",
            id="check-path-relative",
        ),
        pytest.param(
            [{"name": "web", "port": 80, "check_path": "/a b"}],
            None,
            "service 'web' check_path: expected an absolute URL path without spaces, got '/a b'",
            id="check-path-space",
        ),
        pytest.param(
            [{"name": "web", "port": 80, "slowstart": "30"}],
            None,
            "service 'web' slowstart: expected a duration like 500ms, 10s, 1m, got '30'",
            id="slowstart-without-unit",
        ),
        pytest.param(
            [{"name": "web", "port": 80, "prot": 81}],
            None,
            "service 'web' field 'prot' is unknown (did you mean 'port'?); known: name, consul_service, "
            "port, mode, check_path, servers, server_maxconn, timeout_queue, slowstart, error_limit, "
            "rate_limit, rate_period",
            id="service-field-unknown",
        ),
        pytest.param(["web"], None, "services[0]: expected a mapping, got str", id="service-not-mapping"),
        pytest.param({"web": WEB}, None, "gateway services must be a list, got dict", id="services-not-list"),
        pytest.param(
            [WEB],
            {"resolver_prot": 53},
            "gateway setting 'resolver_prot' is unknown (did you mean 'resolver_port'?); known: "
            + ", ".join(DEFAULT_SETTINGS),
            id="setting-unknown",
        ),
        pytest.param(
            [WEB],
            {"resolver_address": "localhost"},
            "gateway setting resolver_address: expected an IPv4 address, got 'localhost'",
            id="resolver-not-address",
        ),
        pytest.param(
            [WEB],
            {"bind_address": "0.0.0.256"},
            "gateway setting bind_address: expected an IPv4 address, '*' or '::', got '0.0.0.256'",
            id="bind-bad-octet",
        ),
        pytest.param(
            [WEB],
            {"consul_domain": "Consul."},
            "gateway setting consul_domain: expected a DNS domain like consul, got 'Consul.'",
            id="domain",
        ),
        pytest.param(
            [WEB],
            {"stats_socket": "run/admin.sock"},
            "gateway setting stats_socket: expected an absolute path of letters, digits and . _ - / @ +,"
            " got 'run/admin.sock'",
            id="socket-relative",
        ),
        pytest.param(
            [WEB],
            {"server_state_file": "/var/lib/it's"},
            "gateway setting server_state_file: expected an absolute path of letters, digits and . _ - / @ +,"
            ' got "/var/lib/it\'s"',
            id="state-file-quote",
        ),
        pytest.param(
            [WEB],
            {"stick_table_size": "0"},
            "gateway setting stick_table_size: expected a size like 100k or 1m, got '0'",
            id="table-size",
        ),
        pytest.param(
            [WEB],
            {"servers": 0},
            "gateway setting servers: expected an integer 1-1024, got 0",
            id="servers-zero",
        ),
        pytest.param(
            [WEB, {"name": "stats", "port": 8405}],
            None,
            "service 'stats' (services[1]) port: 8405 is taken by the Prometheus exporter"
            " (setting metrics_port)",
            id="port-of-the-exporter",
        ),
        pytest.param(
            [WEB],
            {"metrics_port": 65536},
            "gateway setting metrics_port: expected an integer 0-65535, got 65536",
            id="metrics-port-too-high",
        ),
        pytest.param(
            [WEB],
            {"metrics_path": "metrics"},
            "gateway setting metrics_path: expected an absolute URL path without spaces, got 'metrics'",
            id="metrics-path-relative",
        ),
        pytest.param(
            [WEB],
            {"metrics_address": "localhost"},
            "gateway setting metrics_address: expected an IPv4 address, '*' or '::', got 'localhost'",
            id="metrics-address-not-address",
        ),
        pytest.param(
            [WEB], ["maxconn"], "gateway settings must be a mapping, got list", id="settings-not-mapping"
        ),
    ],
)
def test_bad_input_is_refused_naming_service_and_field(services, settings, message):
    with pytest.raises(GatewayError) as caught:
        haproxy_config(services, settings)
    assert str(caught.value) == message


def _host(function):
    return {"labels": {"function": function, "location": "dc1", "rack": "r1"}}


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        pytest.param({}, [], id="no-host"),
        pytest.param({"a": _host("online"), "b": _host("offline")}, [], id="no-ingress"),
        pytest.param(
            {"g1": _host("ingress"), "m1": _host("master"), "g2": _host("ingress"), "w1": _host("online")},
            ["g1", "g2"],
            id="ingress-only-in-plan-order",
        ),
        pytest.param({"x": {"labels": {}}, "y": {}, "g": _host("ingress")}, ["g"], id="no-label"),
    ],
)
def test_gateway_hosts_are_the_ingress_nodes(hosts, expected):
    assert gateway_hosts({"datacenters": {}, "hosts": hosts}) == expected


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        pytest.param(
            None, "gateway_hosts: expected a topology plan with a hosts mapping, got NoneType", id="none"
        ),
        pytest.param(
            {"datacenters": {}},
            "gateway_hosts: expected a topology plan with a hosts mapping, got dict",
            id="no-hosts",
        ),
        pytest.param(
            ["lab1-w1"], "gateway_hosts: expected a topology plan with a hosts mapping, got list", id="list"
        ),
    ],
)
def test_gateway_hosts_refuses_what_is_not_a_plan(plan, message):
    with pytest.raises(GatewayError) as caught:
        gateway_hosts(plan)
    assert str(caught.value) == message
