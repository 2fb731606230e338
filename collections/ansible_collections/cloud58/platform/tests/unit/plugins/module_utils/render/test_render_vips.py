"""Apps' ``vip:`` section: the Service annotations cloud58-lvs-sync selects on, and every bad
VIP refused before anything is rendered, naming the file, the app, the VIP and the port."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.sync import selected_services
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
PLAN = plan_paths([str(REPO / "inventories/lab")])
TARGETS = targets_from_plan(PLAN, "lab")
WEB = {
    "name": "web",
    "team": "shop",
    "namespace": "shop",
    "image": "registry.example/shop/web:1.0.0",
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
    "clusters": {"lab1-k8s": 1},
    "vip": {"address": "198.18.2.10", "port": 80},
}


def app(name="web", **changes):
    raw = {**copy.deepcopy(WEB), "name": name, **changes}
    return (f"apps/{name}.yaml", fill_defaults(APP_SCHEMA, raw))


def service(rendered, cluster, name="web"):
    [target] = [r for r in rendered if r.target.name == cluster]
    [svc] = [o for _s, o in target.objects if o["kind"] == "Service" and o["metadata"]["name"] == name]
    return svc


@pytest.mark.parametrize(
    ("vip", "service_port", "annotations", "ports"),
    [
        pytest.param(
            {"address": "198.18.2.10", "port": 80},
            80,
            {"lvs.cloud58.io/vip": "198.18.2.10", "lvs.cloud58.io/toa": "false"},
            [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            id="same-port-defaults",
        ),
        pytest.param(
            {"address": "198.18.2.10", "port": 443, "scheduler": "sh", "toa": True},
            8080,
            {
                "lvs.cloud58.io/vip": "198.18.2.10",
                "lvs.cloud58.io/scheduler": "sh",
                "lvs.cloud58.io/toa": "true",
            },
            [
                {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
                {"name": "vip", "port": 443, "targetPort": "http", "protocol": "TCP"},
            ],
            id="vip-port-added-scheduler-toa",
        ),
    ],
)
def test_vip_renders_the_service_annotations_lvs_sync_selects_on(vip, service_port, annotations, ports):
    rendered = render_clusters(TARGETS, [app(vip=vip, service={"port": service_port})])
    svc = service(rendered, "lab1-k8s")
    assert svc["metadata"]["annotations"] == annotations
    assert svc["spec"]["ports"] == ports
    # what the sync of a lab1 director makes of it: the VIP port it serves, through which port name
    lvs = PLAN.as_dict()["datacenters"]["lab1"]["lvs"]
    claims, problems = selected_services([svc], lvs, "lab1-lvs1", vip.get("scheduler") or "rr")
    served = next(p["name"] for p in ports if p["port"] == vip["port"])
    assert claims == {"lab1-ingress": {"service": "shop/web", "ports": [(vip["port"], served)]}}
    assert problems == (
        []
        if service_port == vip["port"]
        else [
            f"Service shop/web: port {service_port} is not a port of VIP 'lab1-ingress' (ports: 80, 443); "
            "the port is ignored"
        ]
    )


def test_an_app_without_vip_renders_no_annotation():
    raw = {k: v for k, v in WEB.items() if k != "vip"}
    rendered = render_clusters(TARGETS, [("apps/web.yaml", fill_defaults(APP_SCHEMA, raw))])
    assert "annotations" not in service(rendered, "lab1-k8s")["metadata"]


SPEC_ERRORS = [
    pytest.param(
        {"scheduler": "wrr"},
        "apps/web.yaml: vip.scheduler: app web, VIP 198.18.2.10:80: 'wrr' is not a scheduler of the "
        "directors (rr, random, sh) (rule: enum)",
        id="unknown-scheduler",
    ),
    pytest.param(
        {"protocol": "UDP"},
        "apps/web.yaml: vip.protocol: app web, VIP 198.18.2.10:80: 'UDP' is not supported: the directors "
        "forward TCP only (rule: enum)",
        id="udp",
    ),
    pytest.param(
        {"port": 70000},
        "apps/web.yaml: vip.port: app web, VIP 198.18.2.10:70000: 70000 is not a port (1-65535) "
        "(rule: maximum)",
        id="port-too-high",
    ),
    pytest.param(
        {"port": 0},
        "apps/web.yaml: vip.port: app web, VIP 198.18.2.10:0: 0 is not a port (1-65535) (rule: minimum)",
        id="port-zero",
    ),
    pytest.param(
        {"port": "80"},
        "apps/web.yaml: vip.port: app web, VIP 198.18.2.10:80: '80' is not a port (1-65535) (rule: type)",
        id="port-string",
    ),
    pytest.param(
        {"address": "198.18.2.300"},
        "apps/web.yaml: vip.address: app web, VIP 198.18.2.300:80: '198.18.2.300' is not an IPv4 address "
        "(rule: vip-ipv4)",
        id="not-ipv4",
    ),
    pytest.param(
        {"weight": 3},
        "apps/web.yaml: vip: app web, VIP 198.18.2.10:80: Additional properties are not allowed ('weight' "
        "was unexpected) (rule: additionalProperties)",
        id="unknown-field",
    ),
    pytest.param(
        None,
        "apps/web.yaml: vip: app web: None is not of type 'object' (rule: type)",
        id="null",
    ),
]


@pytest.mark.parametrize(("change", "message"), SPEC_ERRORS)
def test_bad_vip_names_file_app_vip_and_port(tmp_path, change, message):
    (tmp_path / "apps").mkdir()
    vip = None if change is None else {**WEB["vip"], **change}
    (tmp_path / "apps/web.yaml").write_text(yaml.safe_dump({**WEB, "vip": vip}))
    with pytest.raises(AppSpecError) as info:
        load_app_specs(str(tmp_path / "apps"))
    assert info.value.problems == [message]


def test_vip_needs_the_service(tmp_path):
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps/web.yaml").write_text(yaml.safe_dump({**WEB, "service": {"enabled": False}}))
    with pytest.raises(AppSpecError) as info:
        load_app_specs(str(tmp_path / "apps"))
    assert info.value.problems == [
        "apps/web.yaml: vip: app web, VIP 198.18.2.10:80: service.enabled is false; the directors find the "
        "realservers through the app's Service (rule: vip-needs-service)"
    ]


PLAN_ERRORS = [
    pytest.param(
        [app(vip={"address": "198.18.3.1", "port": 80})],
        [
            "apps/web.yaml: vip.address: app web, VIP 198.18.3.1:80: outside the VIP range 198.18.2.0/27 of "
            "datacenter lab1 (cluster lab1-k8s) (rule: vip-in-range)"
        ],
        id="outside-range",
    ),
    pytest.param(
        [app(clusters={"lab1-k8s": 1, "lab2-k8s": 1})],
        [
            "apps/web.yaml: vip.address: app web, VIP 198.18.2.10:80: outside the VIP range 198.19.2.0/27 "
            "of datacenter lab2 (cluster lab2-k8s) (rule: vip-in-range)"
        ],
        id="other-datacenter",
    ),
    pytest.param(
        [app(vip={"address": "198.18.2.11", "port": 80})],
        [
            "apps/web.yaml: vip.address: app web, VIP 198.18.2.11:80: not a VIP of datacenter lab1 in the "
            "inventory (its VIPs: lab1-ingress 198.18.2.10, lab1-k8s-api 198.18.2.1) (rule: vip-in-plan)"
        ],
        id="not-in-plan",
    ),
    pytest.param(
        [app(vip={"address": "198.18.2.10", "port": 8443})],
        [
            "apps/web.yaml: vip.port: app web, VIP 198.18.2.10:8443: not a port of VIP lab1-ingress "
            "(ports: 80, 443) (rule: vip-port-in-plan)"
        ],
        id="port-not-of-vip",
    ),
    pytest.param(
        [app(vip={"address": "198.18.2.1", "port": 6443})],
        [
            "apps/web.yaml: vip.address: app web, VIP 198.18.2.1:6443: VIP lab1-k8s-api is the API VIP of "
            "cluster lab1-k8s (rule: one-claim-per-vip)"
        ],
        id="api-vip",
    ),
    pytest.param(
        [app(), app("shop")],
        [
            "apps/shop.yaml: vip.address: app shop, VIP 198.18.2.10:80: VIP lab1-ingress is already claimed "
            "by app web (apps/web.yaml) in cluster lab1-k8s, port 80; a VIP belongs to one app in one "
            "cluster (rule: one-claim-per-vip)"
        ],
        id="same-vip-port-two-apps",
    ),
    pytest.param(
        [app(), app("shop", vip={"address": "198.18.2.10", "port": 443})],
        [
            "apps/shop.yaml: vip.address: app shop, VIP 198.18.2.10:443: VIP lab1-ingress is already claimed "
            "by app web (apps/web.yaml) in cluster lab1-k8s, port 80; a VIP belongs to one app in one "
            "cluster (rule: one-claim-per-vip)"
        ],
        id="same-vip-other-port",
    ),
]


@pytest.mark.parametrize(("specs", "problems"), PLAN_ERRORS)
def test_vip_against_the_plan_names_file_app_vip_and_port(specs, problems):
    with pytest.raises(AppSpecError) as info:
        render_clusters(TARGETS, specs)
    assert info.value.problems == problems


def test_vips_of_two_datacenters_render():
    rendered = render_clusters(
        TARGETS,
        [app(), app("shop", clusters={"lab2-k8s": 1}, vip={"address": "198.19.2.10", "port": 443})],
    )
    lab1 = service(rendered, "lab1-k8s")["metadata"]["annotations"]
    lab2 = service(rendered, "lab2-k8s", "shop")["metadata"]["annotations"]
    assert (lab1["lvs.cloud58.io/vip"], lab2["lvs.cloud58.io/vip"]) == ("198.18.2.10", "198.19.2.10")
