"""cloud58-netshaper's logic: annotations to rates, tc state from tc -j, and only the commands that differ.

The tc -j texts below are what iproute2 6.1 printed for the states they name (the network
test tests/network/test_netshaper.py runs the same code against the kernel).
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node.shaper import (
    ShaperError,
    Tbf,
    VethState,
    applied,
    apply,
    drops,
    ifb_name,
    limits_from_annotations,
    orphan_ifbs,
    plan,
    read_state,
    tbf_for,
)

IFB = ifb_name("h0")
WHERE = "pod shop/web-1: annotation kubernetes.io/ingress-bandwidth"
TBF_10M = Tbf(rate=1_250_000, burst=65536, latency_us=50_000)
# tc reads the burst and the latency back through the kernel's time units
TBF_10M_READ = Tbf(rate=1_250_000, burst=65535, latency_us=49_999)
# The commands plan returns, joined by spaces.
INGRESS_10M = "tc qdisc replace dev h0 root tbf rate 10000000bit burst 65536 latency 50000us"
IFB_10M = f"tc qdisc replace dev {IFB} root tbf rate 10000000bit burst 65536 latency 50000us"
REDIRECT = (
    "tc filter add dev h0 parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev "
    + IFB
)
SHAPED = VethState(
    root_tbf=TBF_10M_READ,
    root_kind="tbf",
    ingress_qdisc=True,
    redirect_to=IFB,
    ifb_exists=True,
    ifb_tbf=TBF_10M_READ,
    ifb_root_kind="tbf",
)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param({}, {"ingress": None, "egress": None}, id="none"),
        pytest.param(
            {"kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "1G"},
            {"ingress": 10_000_000, "egress": 1_000_000_000},
            id="both",
        ),
        pytest.param(
            {"kubernetes.io/egress-bandwidth": "1.5M", "other": "x"},
            {"ingress": None, "egress": 1_500_000},
            id="decimal-egress-only",
        ),
        pytest.param(
            {"kubernetes.io/ingress-bandwidth": "1k"}, {"ingress": 1000, "egress": None}, id="smallest"
        ),
        pytest.param(
            {"kubernetes.io/ingress-bandwidth": "1Mi"}, {"ingress": 1_048_576, "egress": None}, id="binary"
        ),
    ],
)
def test_limits_from_annotations(annotations, expected):
    assert limits_from_annotations("shop/web-1", annotations) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            "10Mbit/s",
            f"{WHERE}: '10Mbit/s' is not a rate in bits per second as a Kubernetes quantity (like 10M, 1G)",
            id="unit-text",
        ),
        pytest.param(
            "-1",
            f"{WHERE}: '-1' is below 1k (1 kbit/s), the smallest rate the kubelet accepts",
            id="negative",
        ),
        pytest.param(
            "0",
            f"{WHERE}: '0' is below 1k (1 kbit/s), the smallest rate the kubelet accepts",
            id="zero",
        ),
        pytest.param(
            "2P",
            f"{WHERE}: '2P' is above 1P (1 Pbit/s), the largest rate the kubelet accepts",
            id="too-large",
        ),
        pytest.param(
            "",
            f"{WHERE}: '' is not a rate in bits per second as a Kubernetes quantity (like 10M, 1G)",
            id="empty",
        ),
    ],
)
def test_bad_annotation_names_pod_annotation_and_value(value, message):
    with pytest.raises(ShaperError) as info:
        limits_from_annotations("shop/web-1", {"kubernetes.io/ingress-bandwidth": value})
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        (10_000_000, Tbf(rate=1_250_000, burst=65536, latency_us=50_000)),
        (1_000, Tbf(rate=125, burst=65536, latency_us=50_000)),
        (10_000_000_000, Tbf(rate=1_250_000_000, burst=12_500_000, latency_us=50_000)),
    ],
)
def test_tbf_for(bits, expected):
    assert tbf_for(bits) == expected


def test_ifb_name_fits_the_kernel_and_differs_per_veth():
    assert (len(IFB), IFB[:4], ifb_name("h1") == IFB) == (15, "c58s", False)


VETH_UNSHAPED = '[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]'
VETH_SHAPED = (
    '[{"kind":"tbf","handle":"8001:","root":true,"refcnt":3,"options":{"rate":1250000,"burst":65535,"lat":49999},'
    '"drops":7},{"kind":"ingress","handle":"ffff:","parent":"ffff:fff1","options":{},"drops":0}]'
)
FILTERS_REDIRECT = (
    '[{"parent":"ffff:","protocol":"all","pref":49152,"kind":"u32","chain":0},{"parent":"ffff:","protocol":"all",'
    '"pref":49152,"kind":"u32","chain":0,"options":{"fh":"800::800","order":2048,"actions":[{"order":1,'
    '"kind":"mirred","mirred_action":"redirect","direction":"egress","to_dev":"' + IFB + '"}]}}]'
)
# tc's view of the same filter once its ifb was deleted (as the CNI bandwidth plugin's DEL does)
FILTERS_GONE = FILTERS_REDIRECT.replace(IFB, "*")
VETH_INGRESS_ONLY = '[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}},' + (
    '{"kind":"ingress","handle":"ffff:","parent":"ffff:fff1","options":{}}]'
)
IFB_SHAPED = (
    '[{"kind":"tbf","handle":"8002:","root":true,"refcnt":2,"options":{"rate":1250000,"burst":65535,"lat":49999},'
    '"drops":3}]'
)


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        pytest.param((VETH_UNSHAPED, "[]", None), VethState(root_kind="noqueue"), id="unshaped"),
        pytest.param((VETH_SHAPED, FILTERS_REDIRECT, IFB_SHAPED), SHAPED, id="both-directions"),
        pytest.param(
            ("[]", FILTERS_REDIRECT, None),
            VethState(redirect_to=IFB),
            id="redirect-to-a-missing-ifb",
        ),
        pytest.param(
            (VETH_INGRESS_ONLY, FILTERS_GONE, None),
            VethState(root_kind="noqueue", ingress_qdisc=True, stale_redirect=True),
            id="redirect-to-a-deleted-device",
        ),
    ],
)
def test_read_state(texts, expected):
    assert read_state(*texts) == expected


@pytest.mark.parametrize(
    ("state", "limits", "expected"),
    [
        pytest.param(
            VethState(root_kind="noqueue"), {"ingress": None, "egress": None}, [], id="unlimited-stays"
        ),
        pytest.param(
            VethState(root_kind="noqueue"),
            {"ingress": 10_000_000, "egress": 10_000_000},
            [
                INGRESS_10M,
                f"ip link add {IFB} type ifb",
                f"ip link set {IFB} up",
                IFB_10M,
                "tc qdisc add dev h0 ingress",
                REDIRECT,
            ],
            id="first-limits",
        ),
        pytest.param(SHAPED, {"ingress": 10_000_000, "egress": 10_000_000}, [], id="same-limits-read-back"),
        pytest.param(
            SHAPED,
            {"ingress": 20_000_000, "egress": 10_000_000},
            ["tc qdisc replace dev h0 root tbf rate 20000000bit burst 65536 latency 50000us"],
            id="ingress-change-only",
        ),
        pytest.param(
            VethState(root_tbf=Tbf(rate=1_250_000, burst=2**31 - 1, latency_us=25_000), root_kind="tbf"),
            {"ingress": 10_000_000, "egress": None},
            [INGRESS_10M],
            id="same-rate-other-burst-is-replaced",
        ),
        pytest.param(
            SHAPED,
            {"ingress": None, "egress": None},
            [
                "tc qdisc del dev h0 root",
                "tc qdisc del dev h0 ingress",
                f"ip link del {IFB}",
            ],
            id="remove-both",
        ),
        pytest.param(
            VethState(
                ingress_qdisc=True, redirect_to="bwp0123456789ab", ifb_exists=True, ifb_tbf=TBF_10M_READ
            ),
            {"ingress": None, "egress": None},
            ["tc qdisc del dev h0 ingress"],
            id="cni-plugin-ifb-is-left-to-the-plugin",
        ),
        pytest.param(
            VethState(
                ingress_qdisc=True, redirect_to="bwp0123456789ab", ifb_exists=True, ifb_tbf=TBF_10M_READ
            ),
            {"ingress": None, "egress": 20_000_000},
            ["tc qdisc replace dev bwp0123456789ab root tbf rate 20000000bit burst 65536 latency 50000us"],
            id="cni-plugin-ifb-changed-in-place",
        ),
        pytest.param(
            VethState(ingress_qdisc=True, redirect_to=IFB),
            {"ingress": None, "egress": 10_000_000},
            [f"ip link add {IFB} type ifb", f"ip link set {IFB} up", IFB_10M],
            id="missing-ifb-recreated",
        ),
        pytest.param(
            VethState(root_kind="noqueue", ingress_qdisc=True, stale_redirect=True),
            {"ingress": None, "egress": 10_000_000},
            [
                "tc qdisc del dev h0 ingress",
                f"ip link add {IFB} type ifb",
                f"ip link set {IFB} up",
                IFB_10M,
                "tc qdisc add dev h0 ingress",
                REDIRECT,
            ],
            id="stale-redirect-replaced-by-our-ifb",
        ),
        pytest.param(
            VethState(root_kind="noqueue", ingress_qdisc=True, stale_redirect=True),
            {"ingress": None, "egress": None},
            ["tc qdisc del dev h0 ingress"],
            id="stale-redirect-removed",
        ),
    ],
)
def test_plan_changes_only_what_differs(state, limits, expected):
    assert [" ".join(argv) for argv in plan("h0", state, limits)] == expected


@pytest.mark.parametrize("veth", ["", "a" * 16, "a/b", "h 0"])
def test_plan_refuses_a_bad_device_name(veth):
    with pytest.raises(ShaperError, match=r"^veth: .* is not a network device name"):
        plan(veth, VethState(), {"ingress": None, "egress": None})


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (SHAPED, {"ingress": 10_000_000, "egress": 10_000_000}),
        (VethState(root_kind="noqueue"), {"ingress": None, "egress": None}),
        (VethState(ifb_exists=True, ifb_tbf=TBF_10M_READ), {"ingress": None, "egress": None}),  # no redirect
    ],
)
def test_applied(state, expected):
    assert applied(state) == expected


def test_drops_of_both_shaping_qdiscs():
    assert drops(VETH_SHAPED, IFB_SHAPED) == {"ingress": 7, "egress": 3}
    assert drops(VETH_UNSHAPED, None) == {"ingress": 0, "egress": 0}


class FakeTc:
    """tc as far as apply reads it: fixed show outputs, and a record of the changes asked for."""

    def __init__(self, outputs: dict, fail: str | None = None):
        self.outputs = outputs
        self.fail = fail
        self.changes: list[str] = []

    def __call__(self, argv):
        line = " ".join(argv)
        if line in self.outputs:
            return 0, self.outputs[line], ""
        if "show" in argv:
            return 1, "", f'Cannot find device "{argv[-1]}"'
        self.changes.append(line)
        return (2, "", "RTNETLINK answers: Operation not permitted") if line == self.fail else (0, "", "")


SHOWN = {
    "tc -j -s qdisc show dev h0": VETH_SHAPED,
    "tc -j filter show dev h0 ingress": FILTERS_REDIRECT,
    f"tc -j -s qdisc show dev {IFB}": IFB_SHAPED,
}


def test_apply_reads_state_and_runs_nothing_when_it_holds():
    tc = FakeTc(SHOWN)
    result = apply("h0", {"ingress": 10_000_000, "egress": 10_000_000}, tc)
    assert (result["changed"], result["commands"], tc.changes) == (False, [], [])


def test_apply_names_the_failing_command():
    tc = FakeTc(SHOWN, fail="tc qdisc del dev h0 root")
    with pytest.raises(ShaperError) as info:
        apply("h0", {"ingress": None, "egress": 10_000_000}, tc)
    assert str(info.value) == "tc qdisc del dev h0 root: RTNETLINK answers: Operation not permitted"


def _link(name: str, kind: str | None) -> dict:
    link = {"ifindex": 7, "ifname": name, "flags": ["UP"], "mtu": 1500}
    return {**link, "linkinfo": {"info_kind": kind}} if kind else link


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        pytest.param([_link("lo", None), _link("h0", "veth"), _link(IFB, "ifb")], [], id="veth-present"),
        pytest.param([_link("lo", None), _link(IFB, "ifb")], [IFB], id="veth-gone"),
        pytest.param(
            [_link(ifb_name("h1"), "ifb"), _link(IFB, "ifb")], sorted([IFB, ifb_name("h1")]), id="two"
        ),
        pytest.param([_link("bwp0123456789ab", "ifb")], [], id="cni-plugin-ifb-is-not-ours"),
        pytest.param([_link("c58s-not-an-ifb", "dummy")], [], id="our-prefix-on-another-kind"),
        pytest.param([], [], id="nothing"),
    ],
)
def test_orphan_ifbs_are_ours_without_their_veth(links, expected):
    assert orphan_ifbs(json.dumps(links)) == expected
