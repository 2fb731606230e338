"""The Calico release manifest set up for a cluster of the lab plan: exact environment of
calico-node, the backend in calico-config, everything else untouched, bad manifests refused;
and the refusal of a release that is not named by a URL and a sha256."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import BgpError
from ansible_collections.cloud58.platform.plugins.module_utils.bgp.calico_install import (
    calico_install,
    release_problem,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = Path(__file__).resolve().parents[9]
RELEASE = (REPO / "tests/fixtures/calico-release.yaml").read_text()


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


def _docs(text):
    return list(yaml.safe_load_all(text))


@pytest.mark.parametrize(
    ("cluster", "autodetect", "pod_cidr"),
    [
        # inventories/lab: lab1's node subnets and lab1-k8s's pod_cidr; lab2's the same way
        ("lab1-k8s", "cidr=198.18.0.0/26,198.18.0.64/26", "198.18.16.0/21"),
        ("lab2-k8s", "cidr=198.19.0.0/26,198.19.0.64/26", "198.19.16.0/21"),
    ],
)
def test_calico_node_gets_bird_no_overlay_no_default_pool_and_the_rack_subnets(
    plan, cluster, autodetect, pod_cidr
):
    docs = _docs(calico_install(RELEASE, plan, cluster))
    node = docs[1]["spec"]["template"]["spec"]["containers"][0]
    assert node["env"] == [
        {"name": "DATASTORE_TYPE", "value": "kubernetes"},
        {"name": "CALICO_NETWORKING_BACKEND", "value": "bird"},
        {"name": "CLUSTER_TYPE", "value": "k8s,bgp"},
        {"name": "IP", "value": "autodetect"},
        {"name": "CALICO_IPV4POOL_IPIP", "value": "Never"},
        {"name": "CALICO_IPV4POOL_VXLAN", "value": "Never"},
        {"name": "FELIX_LOGSEVERITYSCREEN", "value": "info"},
        {"name": "CALICO_IPV4POOL_CIDR", "value": pod_cidr},
        {"name": "IP_AUTODETECTION_METHOD", "value": autodetect},
        {"name": "NO_DEFAULT_POOLS", "value": "true"},
    ]
    assert docs[0]["data"] == {"typha_service_name": "none", "calico_backend": "bird", "veth_mtu": "0"}


def test_everything_else_of_the_release_is_left_as_it_is(plan):
    before, after = _docs(RELEASE), _docs(calico_install(RELEASE, plan, "lab1-k8s"))
    assert [(d["kind"], d["metadata"]["name"]) for d in after] == [
        ("ConfigMap", "calico-config"),
        ("DaemonSet", "calico-node"),
        ("Deployment", "calico-kube-controllers"),
    ]
    assert after[2] == before[2]
    for doc in (before[1], after[1]):
        del doc["spec"]["template"]["spec"]["containers"][0]["env"]
    assert after[1] == before[1]


def test_the_output_is_the_same_for_the_same_input(plan):
    first = calico_install(RELEASE, plan, "lab1-k8s")
    assert calico_install(RELEASE, plan, "lab1-k8s") == first
    # and applying it again changes nothing: the set-up manifest is a fixed point
    assert calico_install(first, plan, "lab1-k8s") == first


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            "kind: ConfigMap\nmetadata: {name: calico-config, namespace: kube-system}\n",
            "mirror/calico.yaml has no DaemonSet kube-system/calico-node with a container "
            "'calico-node': it is not a Calico release manifest (manifests/calico.yaml)",
        ),
        ("- a\n- list\n", "mirror/calico.yaml holds a document that is not a Kubernetes object"),
        ("kind: [unclosed\n", "mirror/calico.yaml is not YAML: "),
    ],
)
def test_a_manifest_that_is_not_the_release_is_refused(plan, manifest, message):
    with pytest.raises(BgpError) as e:
        calico_install(manifest, plan, "lab1-k8s", source="mirror/calico.yaml")
    assert str(e.value).startswith(message)


def test_a_cluster_the_plan_lacks_is_refused(plan):
    with pytest.raises(BgpError, match=r"^the plan has no cluster 'lab9-k8s'$"):
        calico_install(RELEASE, plan, "lab9-k8s")


DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
WHAT_TO_SET = (
    " (inventory inventories/bj1): set calico_manifest_url to Calico v3.28.2's manifests/calico.yaml "
    "on your mirror and calico_manifest_sha256 to its sha256, computed where the release is reachable "
    "(sha256sum calico.yaml), in group_vars/all; cloud58 ships no digest it has not verified. Or set "
    "calico_install: false to leave Calico out."
)


@pytest.mark.parametrize(
    ("url", "sha256", "problem"),
    [
        pytest.param("https://mirror.example/calico.yaml", DIGEST, "", id="url-and-digest"),
        pytest.param("https://mirror.example/calico.yaml", DIGEST.upper(), "", id="upper-case-digest"),
        pytest.param("", DIGEST, "calico_manifest_url is not set", id="no-url"),
        pytest.param(None, DIGEST, "calico_manifest_url is not set", id="url-null"),
        pytest.param(["a"], DIGEST, "calico_manifest_url is ['a'] (list), not a URL", id="url-list"),
        pytest.param(
            "https://mirror.example/calico.yaml", "", "calico_manifest_sha256 is not set", id="no-digest"
        ),
        pytest.param(
            "https://mirror.example/calico.yaml", None, "calico_manifest_sha256 is not set", id="digest-null"
        ),
        pytest.param(
            "https://mirror.example/calico.yaml",
            "d41d8cd98f00b204e9800998ecf8427e",
            "calico_manifest_sha256 is 'd41d8cd98f00b204e9800998ecf8427e', not 64 hex digits",
            id="md5-not-sha256",
        ),
        pytest.param(
            "https://mirror.example/calico.yaml",
            "sha256:" + DIGEST,
            f"calico_manifest_sha256 is 'sha256:{DIGEST}', not 64 hex digits",
            id="algorithm-prefix",
        ),
        pytest.param(
            "https://mirror.example/calico.yaml",
            DIGEST[:-1] + "g",
            f"calico_manifest_sha256 is '{DIGEST[:-1]}g', not 64 hex digits",
            id="not-hex",
        ),
        pytest.param(
            "https://mirror.example/calico.yaml",
            DIGEST + "\n",
            f"calico_manifest_sha256 is '{DIGEST}\\n', not 64 hex digits",
            id="trailing-newline",
        ),
        pytest.param(
            "https://mirror.example/calico.yaml",
            42,
            "calico_manifest_sha256 is 42, not 64 hex digits",
            id="digest-int",
        ),
    ],
)
def test_a_release_not_named_by_a_url_and_a_sha256_is_refused_naming_the_variable(url, sha256, problem):
    assert release_problem(url, sha256, "v3.28.2", ["inventories/bj1"]) == (problem and problem + WHAT_TO_SET)


@pytest.mark.parametrize(
    ("sources", "named"),
    [
        pytest.param(
            ["inventories/bj1", "extra.yml"], "(inventory inventories/bj1, extra.yml)", id="two-sources"
        ),
        pytest.param("inventories/sh1", "(inventory inventories/sh1)", id="one-string"),
        pytest.param([], "(inventory ?)", id="none"),
    ],
)
def test_the_refusal_names_every_inventory_source(sources, named):
    assert release_problem("", DIGEST, "v3.28.2", sources).split(": set ", maxsplit=1)[0] == (
        "calico_manifest_url is not set " + named
    )
