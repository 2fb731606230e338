"""The runtime-API commands of a gateway backend from Consul's passing instances and HAProxy's
``show servers state`` (module_utils/gateway/runtime.py, pure): every expected command list is
written by hand. The same functions run against the real haproxy and Consul in
tests/network/test_haproxy_gateway_runtime.py."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config
from ansible_collections.cloud58.platform.plugins.module_utils.gateway.runtime import (
    Plan,
    RuntimeSyncError,
    Slot,
    metrics_text,
    parse_servers_state,
    passing_instances,
    plan,
    worker_pid,
)

HEADER = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
)
# haproxy 2.6.12's answer for "server-template web- 3 0.0.0.0:0 disabled" after
# "set server web/web-2 addr 127.0.0.2 port 18932" and "set server web/web-2 state ready"
REAL = HEADER + (
    "3 web 1 web-1 0.0.0.0 0 5 1 1 2 1 0 0 14 0 0 0 - 0 - 0 0 - - 0\n"
    "3 web 2 web-2 127.0.0.2 1 4 1 1 0 1 0 2 6 0 0 0 - 18932 - 0 0 - - 0\n"
    "3 web 3 web-3 0.0.0.0 0 5 1 1 2 1 0 0 14 0 0 0 - 0 - 0 0 - - 0\n"
)


def _state(*slots, backend="web", fqdn="-", srvrecord="-"):
    """``show servers state`` text of (name, address, port, admin state) slots, ids from 1."""
    rows = [
        f"3 {backend} {n} {name} {address} 2 {admin} 1 1 5 6 3 4 6 0 0 0 {fqdn} {port} {srvrecord} 0 0 - - 0"
        for n, (name, address, port, admin) in enumerate(slots, 1)
    ]
    return HEADER + "\n".join(rows) + "\n"


def _health(*instances):
    """Consul's /v1/health/service answer for (ID, service address, port) instances on node n1."""
    return [
        {
            "Node": {"Node": "n1", "Address": "10.0.0.9"},
            "Service": {"ID": ident, "Address": address, "Port": port},
        }
        for ident, address, port in instances
    ]


FREE = ("0.0.0.0", 0, 5)  # a slot as rendered: disabled (FMAINT | CMAINT)
READY = 4  # after "state ready": CMAINT stays, the server is in service
MAINT = 5


def test_the_real_answer_parses_into_slots():
    assert parse_servers_state(REAL, "web") == [
        Slot(1, "web-1", "0.0.0.0", 0, 5),
        Slot(2, "web-2", "127.0.0.2", 18932, 4),
        Slot(3, "web-3", "0.0.0.0", 0, 5),
    ]
    assert [s.in_service for s in parse_servers_state(REAL, "web")] == [False, True, False]


@pytest.mark.parametrize(
    ("health", "state", "expected"),
    [
        pytest.param(
            _health(("a", "10.0.0.1", 8080)),
            _state(("web-1", *FREE), ("web-2", *FREE)),
            ("set server web/web-1 addr 10.0.0.1 port 8080", "set server web/web-1 state ready"),
            id="new-instance-into-the-first-free-slot",
        ),
        pytest.param(
            _health(("a", "10.0.0.1", 8080), ("b", "10.0.0.2", 8080)),
            _state(("web-1", "10.0.0.1", 8080, READY), ("web-2", *FREE), ("web-3", *FREE)),
            ("set server web/web-2 addr 10.0.0.2 port 8080", "set server web/web-2 state ready"),
            id="new-instance-beside-one-in-service",
        ),
        pytest.param(
            _health(("b", "10.0.0.2", 8080)),
            _state(("web-1", "10.0.0.1", 8080, READY), ("web-2", "10.0.0.2", 8080, READY)),
            ("set server web/web-1 state maint",),
            id="removed-instance-to-maint",
        ),
        pytest.param(
            _health(("a", "10.0.0.1", 8080), ("b", "10.0.0.2", 8080)),
            _state(("web-1", "10.0.0.2", 8080, READY), ("web-2", "10.0.0.1", 8080, READY), ("web-3", *FREE)),
            (),
            id="nothing-to-do-whatever-the-slot-order",
        ),
        pytest.param(
            [],
            _state(("web-1", "10.0.0.1", 8080, MAINT), ("web-2", *FREE)),
            (),
            id="nothing-passing-and-nothing-in-service",
        ),
        pytest.param(
            _health(("a", "10.0.0.1", 8080)),
            _state(("web-1", *FREE), ("web-2", "10.0.0.1", 8080, MAINT)),
            ("set server web/web-2 state ready",),
            id="an-instance-passing-again-gets-its-old-slot-back-without-addr",
        ),
        pytest.param(
            _health(("c", "10.0.0.3", 9000)),
            _state(("web-1", "10.0.0.1", 8080, READY), ("web-2", *FREE)),
            (
                "set server web/web-1 state maint",
                "set server web/web-2 addr 10.0.0.3 port 9000",
                "set server web/web-2 state ready",
            ),
            id="replaced-instance-takes-an-already-free-slot-first",
        ),
        pytest.param(
            _health(("c", "10.0.0.3", 9000)),
            _state(("web-1", "10.0.0.1", 8080, READY)),
            (
                "set server web/web-1 state maint",
                "set server web/web-1 addr 10.0.0.3 port 9000",
                "set server web/web-1 state ready",
            ),
            id="replaced-instance-reuses-the-emptied-slot-through-maint",
        ),
        pytest.param(
            _health(("a", "10.0.0.1", 8080)),
            _state(("web-1", "10.0.0.1", 8080, READY), ("web-2", "10.0.0.1", 8080, READY)),
            ("set server web/web-2 state maint",),
            id="a-second-slot-of-the-same-instance-to-maint",
        ),
        pytest.param(
            _health(("a", "10.0.0.1", 8081)),
            _state(("web-1", "10.0.0.1", 8080, READY), ("web-2", *FREE)),
            (
                "set server web/web-1 state maint",
                "set server web/web-2 addr 10.0.0.1 port 8081",
                "set server web/web-2 state ready",
            ),
            id="same-address-other-port-is-another-instance",
        ),
        pytest.param(
            # node address when the service has none; numeric address order (10.0.0.9 < 10.0.0.10)
            _health(("x", "10.0.0.10", 80), ("y", "", 80), ("z", "10.0.0.10", 80)),
            _state(("web-1", *FREE), ("web-2", *FREE), ("web-3", *FREE)),
            (
                "set server web/web-1 addr 10.0.0.9 port 80",
                "set server web/web-1 state ready",
                "set server web/web-2 addr 10.0.0.10 port 80",
                "set server web/web-2 state ready",
            ),
            id="node-address-numeric-order-and-duplicates-once",
        ),
    ],
)
def test_commands(health, state, expected):
    assert plan("web", health, state) == Plan(expected)


def test_more_instances_than_slots_fill_what_fits_and_count_the_rest():
    health = _health(
        ("d", "10.0.0.4", 80), ("a", "10.0.0.1", 80), ("c", "10.0.0.3", 80), ("b", "10.0.0.2", 80)
    )
    state = _state(("web-1", "10.0.0.3", 80, READY), ("web-2", *FREE))
    assert plan("web", health, state) == Plan(
        ("set server web/web-2 addr 10.0.0.1 port 80", "set server web/web-2 state ready"),
        overflow=(("10.0.0.2", 80), ("10.0.0.4", 80)),
    )


def test_an_instance_without_an_ip_address_or_port_is_unusable_not_placed():
    health = _health(("h", "api.example", 80), ("p", "10.0.0.5", 0), ("a", "10.0.0.1", 80))
    assert plan("web", health, _state(("web-1", *FREE), ("web-2", *FREE))) == Plan(
        ("set server web/web-1 addr 10.0.0.1 port 80", "set server web/web-1 state ready"),
        unusable=(("h", "address 'api.example' is not an IP address"), ("p", "port 0 is not 1-65535")),
    )


def test_the_consul_service_name_and_other_backends_rows():
    state = _state(("db-1", *FREE), backend="db") + _state(("web-1", *FREE)).split("\n", 2)[2]
    assert passing_instances(_health(("a", "10.0.0.1", 5432)), "pg") == ([("10.0.0.1", 5432)], [])
    assert plan("db", _health(("a", "10.0.0.1", 5432)), state, service="pg") == Plan(
        ("set server db/db-1 addr 10.0.0.1 port 5432", "set server db/db-1 state ready")
    )


def test_the_same_inputs_give_the_same_commands():
    health = _health(("b", "10.0.0.2", 80), ("a", "10.0.0.1", 80))
    state = _state(("web-1", *FREE), ("web-2", *FREE), ("web-3", "10.0.0.7", 80, READY))
    assert plan("web", health, state) == plan("web", list(reversed(health)), state)
    assert plan("web", health, state).commands == (
        "set server web/web-3 state maint",
        "set server web/web-1 addr 10.0.0.1 port 80",
        "set server web/web-1 state ready",
        "set server web/web-2 addr 10.0.0.2 port 80",
        "set server web/web-2 state ready",
    )


@pytest.mark.parametrize(
    ("health", "state", "message"),
    [
        pytest.param(
            [],
            _state(("web-1", "10.0.0.1", 80, READY), fqdn="_web._tcp.service.consul"),
            "backend 'web': server web-1 is filled by DNS (srv_fqdn _web._tcp.service.consul, "
            "srvrecord -); render the gateway with backend_source runtime",
            id="slots-of-dns",
        ),
        pytest.param(
            [],
            _state(("web-1", "10.0.0.1", 80, READY), fqdn="api.slot.invalid"),
            "backend 'web': server web-1 is filled by DNS (srv_fqdn api.slot.invalid, "
            "srvrecord -); render the gateway with backend_source runtime",
            id="another-backends-slot-name",
        ),
        pytest.param(
            [],
            "No such backend.\n",
            "backend 'web': not an answer of 'show servers state' (version 1): 'No such backend.'",
            id="not-a-state",
        ),
        pytest.param([], HEADER, "backend 'web': no such backend, or it has no servers", id="no-rows"),
        pytest.param(
            {"a": 1},
            _state(("web-1", *FREE)),
            "service 'web': Consul's health answer is not a list",
            id="health-not-a-list",
        ),
    ],
)
def test_answers_that_cannot_be_acted_on_are_refused_by_backend(health, state, message):
    with pytest.raises(RuntimeSyncError) as e:
        plan("web", health, state)
    assert str(e.value) == message


def test_the_runtime_source_renders_disabled_slots_and_no_resolvers():
    text = haproxy_config([{"name": "web", "port": 8080}], {"backend_source": "runtime", "servers": 3})
    assert "resolvers" not in text
    assert text.splitlines()[0] == (
        "# Ingress gateway: backends from Consul through the runtime API (cloud58-gateway-sync), "
        "rendered by cloud58.platform"
    )
    slots = "    server-template web- 3 web.slot.invalid:1 disabled init-addr last,0.0.0.0"
    assert slots in text.splitlines()


# show info of Debian's haproxy 2.6 in master-worker mode (its first lines), as the stats
# socket answers it from the worker
SHOW_INFO = (
    "Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nRelease_date: 2026/10/17\nNbthread: 2\nNbproc: 1\n"
    "Process_num: 1\nPid: 3564\nUptime: 0d 0h00m00s\nUptime_sec: 0\n"
)


def test_worker_pid_is_the_pid_line_of_show_info():
    assert worker_pid(SHOW_INFO) == 3564


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Name: HAProxy\nProcess_num: 1\n", id="no-pid"),
        pytest.param("Pid: none\n", id="not-a-number"),
    ],
)
def test_worker_pid_without_a_pid_line_is_refused(text):
    with pytest.raises(RuntimeSyncError, match=r"^show info: no 'Pid:' line in "):
        worker_pid(text)


# haproxy 2.6.12's answer for the slots' line as rendered ("server-template web- 3
# web.slot.invalid:1 disabled init-addr last,0.0.0.0", without checks) after "set server
# web/web-2 addr 127.0.0.2 port 18932" and "set server web/web-2 state ready"
REAL_NAMED = HEADER + (
    "3 web 1 web-1 0.0.0.0 0 5 1 1 1 1 0 0 8 0 0 0 web.slot.invalid 1 - 0 0 - - 0\n"
    "3 web 2 web-2 127.0.0.2 2 4 1 1 0 1 0 0 8 0 0 0 web.slot.invalid 18932 - 0 0 - - 0\n"
    "3 web 3 web-3 0.0.0.0 0 5 1 1 1 1 0 0 8 0 0 0 web.slot.invalid 1 - 0 0 - - 0\n"
)


def test_the_named_slots_parse_and_only_missing_instances_get_commands():
    assert parse_servers_state(REAL_NAMED, "web") == [
        Slot(1, "web-1", "0.0.0.0", 1, 5),
        Slot(2, "web-2", "127.0.0.2", 18932, 4),
        Slot(3, "web-3", "0.0.0.0", 1, 5),
    ]
    health = _health(("a", "127.0.0.2", 18932), ("b", "127.0.0.3", 18933))
    assert plan("web", health, REAL_NAMED).commands == (
        "set server web/web-1 addr 127.0.0.3 port 18933",
        "set server web/web-1 state ready",
    )


def test_metrics_text_lists_every_backend_in_name_order_and_the_reloads():
    text = metrics_text(
        {
            "web": {"answers_total": 3, "commands_total": 4, "passing_instances": 2},
            "api": {"errors_total": 1},
        },
        reloads=2,
    )
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        'cloud58_gateway_sync_answers_total{backend="api"} 0',
        'cloud58_gateway_sync_answers_total{backend="web"} 3',
        'cloud58_gateway_sync_commands_total{backend="api"} 0',
        'cloud58_gateway_sync_commands_total{backend="web"} 4',
        'cloud58_gateway_sync_errors_total{backend="api"} 1',
        'cloud58_gateway_sync_errors_total{backend="web"} 0',
        'cloud58_gateway_sync_passing_instances{backend="api"} 0',
        'cloud58_gateway_sync_passing_instances{backend="web"} 2',
        "cloud58_gateway_sync_reloads_total 2",
    ]
    assert "# TYPE cloud58_gateway_sync_passing_instances gauge" in text.splitlines()
    assert text.endswith("\n")
