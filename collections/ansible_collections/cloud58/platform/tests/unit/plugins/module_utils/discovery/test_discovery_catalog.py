"""Consul's catalog from Kubernetes: registered Services, desired instances, the /v1/txn plan."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.discovery.catalog import (
    TXN_LIMIT,
    DiscoveryError,
    RateLimit,
    apply_batch,
    check_settings,
    current_instances,
    desired_instances,
    plan,
    prometheus_text,
    selected_services,
)

OWNED = {"cloud58-sync": "c1", "k8s-service": "shop/web"}


def _service(name, annotations=None, ports=("http",), namespace="shop", labels=None):
    return {
        "metadata": {"namespace": namespace, "name": name, "annotations": annotations, "labels": labels},
        "spec": {"ports": [{"name": p, "port": 80 + i} for i, p in enumerate(ports)]},
    }


def _slice(service, endpoints, name=None, *, namespace="shop", ports=(("http", 8080),), address_type="IPv4"):
    return {
        "metadata": {
            "namespace": namespace,
            "name": name or f"{service}-1",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
    }


def _ep(address, ready=True, terminating=None):
    conditions = {} if ready is None else {"ready": ready}
    if terminating is not None:
        conditions["terminating"] = terminating
    return {"addresses": [address], "conditions": conditions}


def _instance(address, status="passing", port=8080, tags=("cluster=c1", "datacenter=bj1"), meta=None):
    return {
        "ID": f"web-{address}-{port}",
        "Service": "web",
        "Address": address,
        "Port": port,
        "Tags": list(tags),
        "Meta": meta or dict(OWNED),
        "Status": status,
    }


@pytest.mark.parametrize(
    ("services", "claims", "problems"),
    [
        pytest.param([_service("web")], {}, [], id="no-annotation"),
        pytest.param(
            [_service("web", {"consul.cloud58.io/service": "web"})],
            {"shop/web": {"name": "web", "port": "http", "version": None}},
            [],
            id="one-port",
        ),
        pytest.param(
            [
                _service(
                    "web",
                    {"consul.cloud58.io/service": "web", "consul.cloud58.io/port": "grpc"},
                    ports=("http", "grpc"),
                    labels={"app.kubernetes.io/version": "1.2.0"},
                )
            ],
            {"shop/web": {"name": "web", "port": "grpc", "version": "1.2.0"}},
            [],
            id="named-port-version-label",
        ),
        pytest.param(
            [_service("web", {"consul.cloud58.io/service": "web", "consul.cloud58.io/version": "2"})],
            {"shop/web": {"name": "web", "port": "http", "version": "2"}},
            [],
            id="version-annotation",
        ),
        pytest.param(
            [_service("web", {"consul.cloud58.io/service": "Web_1"})],
            {},
            [
                "Service shop/web: annotation consul.cloud58.io/service: 'Web_1' is not a DNS label "
                "(a-z, 0-9, '-', at most 63); not registered"
            ],
            id="bad-dns-name",
        ),
        pytest.param(
            [_service("web", {"consul.cloud58.io/service": "web", "consul.cloud58.io/port": "grpc"})],
            {},
            [
                "Service shop/web: annotation consul.cloud58.io/port: 'grpc' is not a port of the Service "
                "(ports: 'http')"
            ],
            id="missing-port",
        ),
        pytest.param(
            [_service("web", {"consul.cloud58.io/service": "web"}, ports=("http", "grpc"))],
            {},
            [
                "Service shop/web: 2 ports ('http', 'grpc') and no annotation consul.cloud58.io/port "
                "naming the one to register"
            ],
            id="two-ports-no-choice",
        ),
        pytest.param(
            [
                _service("web2", {"consul.cloud58.io/service": "web"}),
                _service("web", {"consul.cloud58.io/service": "web"}),
            ],
            {"shop/web": {"name": "web", "port": "http", "version": None}},
            [
                "Service shop/web2: annotation consul.cloud58.io/service: 'web' is already claimed by "
                "Service shop/web"
            ],
            id="two-claim-one-name",
        ),
    ],
)
def test_selected_services(services, claims, problems):
    got_claims, got_problems, refused = selected_services(services)
    assert (got_claims, got_problems) == (claims, problems)
    assert refused == {p.split(":")[0].removeprefix("Service ") for p in problems}


@pytest.mark.parametrize(
    ("cluster", "datacenter", "message"),
    [
        ("c1", "bj1", None),
        ("C1", "bj1", "cluster: 'C1' is not a DNS label (a-z, 0-9, '-', at most 63)"),
        ("c1", "", "datacenter: '' is not a DNS label (a-z, 0-9, '-', at most 63)"),
    ],
)
def test_check_settings(cluster, datacenter, message):
    if message is None:
        check_settings(cluster, datacenter)
    else:
        with pytest.raises(DiscoveryError) as e:
            check_settings(cluster, datacenter)
        assert str(e.value) == message


WEB = _service("web", {"consul.cloud58.io/service": "web"})


@pytest.mark.parametrize(
    ("slices", "expected"),
    [
        pytest.param(
            [_slice("web", [_ep("198.18.9.3"), _ep("198.18.9.2", ready=None)])],
            {"web-198.18.9.2-8080": "passing", "web-198.18.9.3-8080": "passing"},
            id="ready-and-unset",
        ),
        pytest.param(
            [_slice("web", [_ep("198.18.9.2", ready=False), _ep("198.18.9.3", terminating=True)])],
            {"web-198.18.9.2-8080": "critical", "web-198.18.9.3-8080": "critical"},
            id="not-ready-and-terminating",
        ),
        pytest.param(
            [
                _slice("web", [_ep("198.18.9.2", ready=False)], name="a"),
                _slice("web", [_ep("198.18.9.2")], name="b"),
            ],
            {"web-198.18.9.2-8080": "passing"},
            id="duplicate-across-slices-ready-wins",
        ),
        pytest.param(
            [_slice("web", [_ep("fd00::1")], address_type="IPv6"), _slice("api", [_ep("198.18.9.9")])],
            {},
            id="ipv6-and-unregistered-service",
        ),
        pytest.param(
            [_slice("web", [_ep("198.18.9.2")], ports=(("metrics", 9090),))],
            {},
            id="no-slice-port-of-that-name",
        ),
        pytest.param(
            [_slice("web", [_ep("198.18.9.2")], namespace="other")],
            {},
            id="same-name-other-namespace",
        ),
    ],
)
def test_desired_instances_health_follows_readiness(slices, expected):
    instances, problems, refused = desired_instances([WEB], slices, "c1", "bj1")
    assert {k: v["Status"] for k, v in instances.items()} == expected
    assert (problems, refused) == ([], set())


def test_desired_instance_fields():
    svc = _service("web", {"consul.cloud58.io/service": "web", "consul.cloud58.io/version": "1.4"})
    instances = desired_instances([svc], [_slice("web", [_ep("198.18.9.2")])], "c1", "bj1")[0]
    assert instances == {
        "web-198.18.9.2-8080": {
            "ID": "web-198.18.9.2-8080",
            "Service": "web",
            "Address": "198.18.9.2",
            "Port": 8080,
            "Tags": ["cluster=c1", "datacenter=bj1", "version=1.4"],
            "Meta": {"cloud58-sync": "c1", "k8s-service": "shop/web"},
            "Status": "passing",
        }
    }


def test_current_instances_keeps_only_what_this_cluster_owns():
    services = {
        "Node": {"Node": "k8s-c1"},
        "Services": {
            "web-198.18.9.2-8080": {**_instance("198.18.9.2"), "Weights": {"Passing": 1}},
            "web-198.18.9.3-8080": {**_instance("198.18.9.3"), "Meta": {"cloud58-sync": "c2"}},
            "hand-made": {"ID": "hand-made", "Service": "x", "Meta": {}},
        },
    }
    checks = [
        {"ServiceID": "web-198.18.9.2-8080", "Status": "critical"},
        {"ServiceID": "", "Status": "passing"},
    ]
    assert current_instances(services, checks, "c1") == {
        "web-198.18.9.2-8080": dict(_instance("198.18.9.2", "critical"))
    }
    assert current_instances(None, [], "c1") == {}


def _ids(batches):
    out = []
    for batch in batches:
        for op in batch:
            kind = next(iter(op))
            body = op[kind]
            ident = (
                body.get("Service", {}).get("ID")
                if kind == "Service"
                else body.get("Check", {}).get("ServiceID")
            )
            out.append((kind, body["Verb"], ident or body.get("Node", {}).get("Node")))
    return out


def test_plan_new_node_and_instances_then_nothing():
    desired = {i["ID"]: i for i in (_instance("198.18.9.2"), _instance("198.18.9.3", "critical"))}
    batches, summary, due = plan(desired, {}, "c1", 1000.0, 30, node_exists=False)
    assert _ids(batches) == [
        ("Node", "set", "k8s-c1"),
        ("Service", "set", "web-198.18.9.2-8080"),
        ("Check", "set", "web-198.18.9.2-8080"),
        ("Service", "set", "web-198.18.9.3-8080"),
        ("Check", "set", "web-198.18.9.3-8080"),
    ]
    assert batches[0][4]["Check"]["Check"]["Status"] == "critical"
    assert (summary, due) == ({"set": 2, "mark": 0, "sweep": 0}, None)
    after = apply_batch({}, batches[0], "c1")
    assert after == desired
    assert plan(desired, after, "c1", 1001.0, 30) == ([], {"set": 0, "mark": 0, "sweep": 0}, None)


@pytest.mark.parametrize(
    ("now", "kind", "summary", "due"),
    [
        pytest.param(1000.0, "mark", {"set": 0, "mark": 1, "sweep": 0}, 1030.0, id="gone-is-marked"),
        pytest.param(1029.9, "wait", {"set": 0, "mark": 0, "sweep": 0}, 1030.0, id="marked-waits"),
        pytest.param(1030.0, "sweep", {"set": 0, "mark": 0, "sweep": 1}, None, id="swept-after-grace"),
    ],
)
def test_plan_mark_then_sweep(now, kind, summary, due):
    kept = _instance("198.18.9.2")
    gone = _instance("198.18.9.3")
    current = {kept["ID"]: kept, gone["ID"]: gone}
    if kind != "mark":
        current[gone["ID"]] = {
            **gone,
            "Status": "critical",
            "Meta": {**OWNED, "cloud58-sync-gone": "1000.000"},
        }
    batches, got, next_sweep = plan({kept["ID"]: kept}, current, "c1", now, 30)
    assert (got, next_sweep) == (summary, due)
    if kind == "mark":
        assert _ids(batches) == [("Service", "set", gone["ID"]), ("Check", "set", gone["ID"])]
        assert batches[0][0]["Service"]["Service"]["Meta"] == {**OWNED, "cloud58-sync-gone": "1000.000"}
        assert batches[0][1]["Check"]["Check"]["Status"] == "critical"
    elif kind == "wait":
        assert batches == []
    else:
        assert batches == [
            [
                {
                    "Service": {
                        "Verb": "delete",
                        "Node": "k8s-c1",
                        "Service": {"ID": gone["ID"], "Service": "web"},
                    }
                }
            ]
        ]
        assert apply_batch(current, batches[0], "c1") == {kept["ID"]: kept}


def test_plan_an_endpoint_back_before_the_sweep_is_unmarked():
    back = _instance("198.18.9.3")
    marked = {**back, "Status": "critical", "Meta": {**OWNED, "cloud58-sync-gone": "1000.000"}}
    batches, summary, due = plan({back["ID"]: back}, {back["ID"]: marked}, "c1", 1010.0, 30)
    assert (_ids(batches), summary, due) == (
        [("Service", "set", back["ID"]), ("Check", "set", back["ID"])],
        {"set": 1, "mark": 0, "sweep": 0},
        None,
    )
    assert batches[0][0]["Service"]["Service"]["Meta"] == OWNED


def test_plan_leaves_a_refused_service_alone():
    current = {"web-198.18.9.2-8080": _instance("198.18.9.2")}
    assert plan({}, current, "c1", 1000.0, 30, refused={"shop/web"}) == (
        [],
        {"set": 0, "mark": 0, "sweep": 0},
        None,
    )


@pytest.mark.parametrize(("count", "sizes"), [(1, [2]), (32, [64]), (33, [64, 2]), (100, [64, 64, 64, 8])])
def test_plan_batches_at_most_the_txn_limit_keeping_service_and_check_together(count, sizes):
    desired = {}
    for n in range(count):
        inst = _instance(f"198.18.{10 + n // 250}.{n % 250}")
        desired[inst["ID"]] = inst
    batches, summary = plan(desired, {}, "c1", 0.0, 30)[:2]
    assert [len(b) for b in batches] == sizes
    assert all(len(b) <= TXN_LIMIT for b in batches)
    for batch in batches:
        assert [next(iter(op)) for op in batch] == ["Service", "Check"] * (len(batch) // 2)
    assert summary["set"] == count
    state = {}
    for batch in batches:
        state = apply_batch(state, batch, "c1")
    assert state == desired


def test_prometheus_text():
    text = prometheus_text({"txn_total": 3, "instances": 2, "kube_list_failures_total": 4}, "c1")
    assert 'cloud58_consul_sync_txn_total{cluster="c1"} 3\n' in text
    assert 'cloud58_consul_sync_kube_list_failures_total{cluster="c1"} 4\n' in text
    assert 'cloud58_consul_sync_kube_watch_failures_total{cluster="c1"} 0\n' in text
    assert 'cloud58_consul_sync_instances{cluster="c1"} 2\n' in text
    assert 'cloud58_consul_sync_deregistered_total{cluster="c1"} 0\n' in text
    assert 'cloud58_consul_sync_relists_total{cluster="c1"} 0\n' in text
    assert "# TYPE cloud58_consul_sync_instances gauge\n" in text
    assert "# TYPE cloud58_consul_sync_relists_total counter\n" in text
    assert text.count("# TYPE ") == 14


@pytest.mark.parametrize(
    ("per_second", "wanted_at", "delays"),
    [
        pytest.param(50, [0.0, 0.0, 0.0], [0.0, 0.02, 0.04], id="burst-queued"),
        pytest.param(50, [0.0, 0.5, 0.505], [0.0, 0.0, 0.015], id="quiet-then-close"),
        pytest.param(2, [10.0, 10.1, 10.2, 20.0], [0.0, 0.4, 0.8, 0.0], id="queue-then-idle"),
    ],
)
def test_rate_limit_spaces_the_writes(per_second, wanted_at, delays):
    limit = RateLimit(per_second)
    assert [round(limit.delay(now), 6) for now in wanted_at] == delays
