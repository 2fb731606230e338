"""Every rendered Calico object is validated server-side by a real kube-apiserver.

The CRDs are the project's own (crds/calico/*.yaml, written from the documented field
names), installed by the lab's ``install_calico_crds``. Objects are applied with strict
field validation, so an unknown or misspelt field is an error, not a silently pruned value.
The negative cases prove the schemas have teeth.
Everything the test creates is deleted again (the apiservers are shared by the session).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import calico_objects
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab.calico import install_calico_crds

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONTEXT = "c3"
KINDS = {
    "BGPConfiguration": "bgpconfigurations",
    "BGPPeer": "bgppeers",
    "IPPool": "ippools",
    "IPReservation": "ipreservations",
    "FelixConfiguration": "felixconfigurations",
}
# Options that make the renderer use every field it knows.
FULL_OPTIONS = {
    "advertise_service_cluster_ips": True,
    "service_external_ips": ["198.18.3.0/28"],
    "service_loadbalancer_ips": ["198.18.2.16/28"],
    "calico_max_restart_time": "30s",
    "fixed_ip_reservations": {
        "lab1-k8s": {"snowflake": ["198.18.16.200", "198.18.16.240/30"]},
        "lab2-k8s": {"snowflake": ["198.19.16.200"]},
    },
}


def _plan():
    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


@pytest.fixture(scope="module")
def calico_api(kube_clusters):
    cluster = kube_clusters[CONTEXT]
    names = install_calico_crds(cluster)
    assert sorted(names) == sorted(f"{plural}.crd.projectcalico.org" for plural in KINDS.values())
    yield cluster
    cluster.kubectl("delete", "--wait=true", "--ignore-not-found", *[f"crd/{n}" for n in names])


def _apply(cluster, obj, check=True):
    return cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=cloud58-test",
        "--validate=strict",
        "-f",
        "-",
        stdin=json.dumps(obj),
        check=check,
    )


def _delete_all(cluster, objects):
    for obj in objects:
        cluster.kubectl(
            "delete",
            "--ignore-not-found",
            f"{KINDS[obj['kind']]}.crd.projectcalico.org",
            obj["metadata"]["name"],
        )


@pytest.mark.parametrize("cluster_name", ["lab1-k8s", "lab2-k8s"])
@pytest.mark.parametrize("options", [{}, FULL_OPTIONS], ids=["defaults", "every-field"])
def test_rendered_calico_objects_pass_server_side_validation(calico_api, cluster_name, options):
    objects = calico_objects(_plan(), cluster_name, options)
    assert {o["kind"] for o in objects} >= {"BGPConfiguration", "BGPPeer", "IPPool", "FelixConfiguration"}
    try:
        for obj in objects:
            result = _apply(calico_api, obj, check=False)
            assert result.returncode == 0, f"{obj['kind']}/{obj['metadata']['name']}: {result.stderr}"
        # what the server stored is what was rendered: nothing pruned, nothing defaulted away
        for obj in objects:
            stored = json.loads(
                calico_api.kubectl(
                    "get",
                    f"{KINDS[obj['kind']]}.crd.projectcalico.org",
                    obj["metadata"]["name"],
                    "-o",
                    "json",
                ).stdout
            )
            assert stored["spec"] == obj["spec"], obj["metadata"]["name"]
            assert obj["metadata"]["labels"].items() <= stored["metadata"]["labels"].items()
    finally:
        _delete_all(calico_api, objects)


def _first(objects, kind):
    return copy.deepcopy(next(o for o in objects if o["kind"] == kind))


BROKEN = [
    ("IPPool", lambda s: s.update(blockSize=33), "blockSize"),
    ("IPPool", lambda s: s.update(cidr="198.18.16.0"), "cidr"),
    ("IPPool", lambda s: s.update(blockSize=20), "blockSize must not be shorter"),
    ("IPPool", lambda s: s.update(ipipMode="Sometimes"), "ipipMode"),
    ("BGPPeer", lambda s: s.update(peerIP="198.18.0.300"), "peerIP"),
    ("BGPPeer", lambda s: s.update(node="lab1-m1"), "node and nodeSelector exclude each other"),
    ("BGPPeer", lambda s: s.pop("asNumber"), "a peer needs peerIP and asNumber"),
    ("BGPPeer", lambda s: s.update(asNumber=0), "asNumber"),
    ("BGPPeer", lambda s: s.update(peerAS=65000), "peerAS"),
    ("BGPConfiguration", lambda s: s.update(serviceClusterIPs=[{"cidr": "198.18.8.0/33"}]), "cidr"),
    ("BGPConfiguration", lambda s: s.update(nodeToNodeMeshEnabled="no"), "nodeToNodeMeshEnabled"),
    ("IPReservation", lambda s: s.update(reservedCIDRs=["not-an-ip"]), "reservedCIDRs"),
    ("FelixConfiguration", lambda s: s.update(bpfEnabeld=False), "bpfEnabeld"),
    ("FelixConfiguration", lambda s: s.update(ipForwarding="Yes"), "ipForwarding"),
]


@pytest.mark.parametrize(("kind", "damage", "complaint"), BROKEN, ids=[f"{k}-{c}" for k, _, c in BROKEN])
def test_schemas_reject_broken_objects(calico_api, kind, damage, complaint):
    obj = _first(calico_objects(_plan(), "lab1-k8s", FULL_OPTIONS), kind)
    damage(obj["spec"])
    try:
        result = _apply(calico_api, obj, check=False)
        assert result.returncode != 0, (
            f"{kind} with a broken spec was accepted: {yaml.safe_dump(obj['spec'])}"
        )
        assert complaint in result.stderr
    finally:
        _delete_all(calico_api, [obj])
