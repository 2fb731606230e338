"""Apps' ``consul:`` section: the Service annotations cloud58-consul-sync selects on, read back
by the sync's own selection, and every bad one refused before anything is rendered, naming the
file, the app and the Consul service."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.discovery.catalog import selected_services
from ansible_collections.cloud58.platform.plugins.module_utils.render.app_schema import (
    APP_SCHEMA,
    fill_defaults,
    load_app_specs,
)
from ansible_collections.cloud58.platform.plugins.module_utils.render.errors import AppSpecError
from ansible_collections.cloud58.platform.plugins.module_utils.render.targets import targets_from_plan
from ansible_collections.cloud58.platform.plugins.module_utils.render.tree import render_clusters
from ansible_collections.cloud58.platform.plugins.module_utils.topology import plan_paths

REPO = Path(__file__).resolve().parents[9]
TARGETS = targets_from_plan(plan_paths([str(REPO / "inventories/lab")]), "lab")
SHOP = {
    "name": "shop",
    "team": "shop",
    "namespace": "shop",
    "image": "registry.example/shop/shop:1.0.0",
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
    "clusters": {"lab1-k8s": 1},
    "consul": {"service": "shop"},
}


def app(name="shop", **changes):
    raw = {**copy.deepcopy(SHOP), "name": name, **changes}
    return (f"apps/{name}.yaml", fill_defaults(APP_SCHEMA, raw))


def service(rendered, name="shop"):
    [target] = [r for r in rendered if r.target.name == "lab1-k8s"]
    [svc] = [o for _s, o in target.objects if o["kind"] == "Service" and o["metadata"]["name"] == name]
    return svc


@pytest.mark.parametrize(
    ("changes", "annotations", "claim"),
    [
        pytest.param(
            {},
            {"consul.cloud58.io/service": "shop", "consul.cloud58.io/port": "http"},
            {"name": "shop", "port": "http", "version": None},
            id="name-only",
        ),
        pytest.param(
            {"consul": {"service": "checkout", "version": "1.4.2"}},
            {
                "consul.cloud58.io/service": "checkout",
                "consul.cloud58.io/port": "http",
                "consul.cloud58.io/version": "1.4.2",
            },
            {"name": "checkout", "port": "http", "version": "1.4.2"},
            id="with-version",
        ),
        pytest.param(
            {"vip": {"address": "198.18.2.10", "port": 443}, "service": {"port": 8080}},
            {
                "consul.cloud58.io/service": "shop",
                "consul.cloud58.io/port": "http",
                "lvs.cloud58.io/vip": "198.18.2.10",
                "lvs.cloud58.io/toa": "false",
            },
            {"name": "shop", "port": "http", "version": None},
            id="beside-a-vip-port",
        ),
    ],
)
def test_consul_renders_the_service_annotations_the_sync_registers(changes, annotations, claim):
    svc = service(render_clusters(TARGETS, [app(**changes)]))
    assert svc["metadata"]["annotations"] == annotations
    assert selected_services([svc]) == ({"shop/shop": claim}, [], set())


def test_an_app_without_consul_renders_no_consul_annotation():
    raw = {k: v for k, v in SHOP.items() if k != "consul"}
    svc = service(render_clusters(TARGETS, [("apps/shop.yaml", fill_defaults(APP_SCHEMA, raw))]))
    assert "annotations" not in svc["metadata"]
    assert selected_services([svc]) == ({}, [], set())


SPEC_ERRORS = [
    pytest.param(
        {"consul": {"service": "Shop_1"}},
        "apps/shop.yaml: consul.service: app shop, Consul service Shop_1: 'Shop_1' is not a DNS label "
        "(a-z, 0-9, '-', at most 63) (rule: pattern)",
        id="not-a-dns-label",
    ),
    pytest.param(
        {"consul": {"service": "shop", "tags": ["a"]}},
        "apps/shop.yaml: consul: app shop, Consul service shop: Additional properties are not allowed "
        "('tags' was unexpected) (rule: additionalProperties)",
        id="unknown-field",
    ),
    pytest.param(
        {"consul": {"version": "1.0"}},
        "apps/shop.yaml: consul: app shop, Consul service None: 'service' is a required property "
        "(rule: required)",
        id="no-service",
    ),
    pytest.param(
        {"consul": "shop"},
        "apps/shop.yaml: consul: app shop: 'shop' is not of type 'object', 'null' (rule: type)",
        id="a-string",
    ),
    pytest.param(
        {"service": {"enabled": False}},
        "apps/shop.yaml: consul: app shop, Consul service shop: service.enabled is false; "
        "cloud58-consul-sync registers the endpoints of the app's Service (rule: consul-needs-service)",
        id="no-service-to-register",
    ),
]


@pytest.mark.parametrize(("changes", "message"), SPEC_ERRORS)
def test_bad_consul_names_file_app_and_service(tmp_path, changes, message):
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps/shop.yaml").write_text(yaml.safe_dump({**SHOP, **changes}))
    with pytest.raises(AppSpecError) as info:
        load_app_specs(str(tmp_path / "apps"))
    assert info.value.problems == [message]


@pytest.mark.parametrize(
    ("second", "problems"),
    [
        pytest.param(
            app("cart", consul={"service": "shop"}),
            [
                "apps/cart.yaml: consul.service: app cart, Consul service shop: already claimed by app shop "
                "(apps/shop.yaml); a Consul service belongs to one app (rule: one-app-per-consul-service)"
            ],
            id="same-name-same-cluster",
        ),
        pytest.param(
            app("cart", consul={"service": "shop"}, clusters={"lab2-k8s": 1}),
            [
                "apps/cart.yaml: consul.service: app cart, Consul service shop: already claimed by app shop "
                "(apps/shop.yaml); a Consul service belongs to one app (rule: one-app-per-consul-service)"
            ],
            id="same-name-other-cluster",
        ),
        pytest.param(app("cart", consul={"service": "cart"}), None, id="other-name"),
    ],
)
def test_one_consul_service_belongs_to_one_app(second, problems):
    if problems is None:
        rendered = render_clusters(TARGETS, [app(), second])
        assert service(rendered, "cart")["metadata"]["annotations"]["consul.cloud58.io/service"] == "cart"
        return
    with pytest.raises(AppSpecError) as info:
        render_clusters(TARGETS, [app(), second])
    assert info.value.problems == problems
