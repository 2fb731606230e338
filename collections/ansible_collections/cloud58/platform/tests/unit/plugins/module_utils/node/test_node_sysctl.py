"""Decisions of the sysctl_profile module: paths, file text, what to write and set."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node import sysctl

FILES = [
    {
        "path": "/etc/sysctl.d/60-ns.conf",
        "comment": "namespaced\nkeys",
        "values": {"net.ipv4.ip_local_port_range": "10240 65535", "net.core.somaxconn": 8192},
    },
    {"path": "/etc/sysctl.d/61-host.conf", "comment": "", "values": {"vm.swappiness": "0"}},
]
NS_TEXT = "# namespaced\n# keys\nnet.core.somaxconn = 8192\nnet.ipv4.ip_local_port_range = 10240 65535\n"
HOST_TEXT = "vm.swappiness = 0\n"


@pytest.mark.parametrize(
    ("key", "path"),
    [
        pytest.param("net.core.somaxconn", "/proc/sys/net/core/somaxconn", id="plain"),
        pytest.param(
            "net.ipv4.conf.eth0/100.rp_filter", "/proc/sys/net/ipv4/conf/eth0.100/rp_filter", id="vlan"
        ),
        pytest.param(
            "net.bridge.bridge-nf-call-iptables", "/proc/sys/net/bridge/bridge-nf-call-iptables", id="dash"
        ),
    ],
)
def test_key_path(key, path):
    assert sysctl.key_path(key) == path


def test_render_file_sorts_keys_and_comments_every_line():
    assert sysctl.render_file(FILES[0]["comment"], FILES[0]["values"]) == NS_TEXT


def test_nothing_to_do_when_files_and_live_values_match():
    plan = sysctl.plan_changes(
        FILES,
        {"/etc/sysctl.d/60-ns.conf": NS_TEXT, "/etc/sysctl.d/61-host.conf": HOST_TEXT},
        ["net.core.somaxconn", "net.ipv4.ip_local_port_range"],
        {"net.core.somaxconn": "8192\n", "net.ipv4.ip_local_port_range": "10240\t65535\n"},
    )
    assert plan == {"files": {}, "set": {}, "missing": [], "diff": []}


def test_new_file_and_changed_live_value():
    plan = sysctl.plan_changes(
        FILES,
        {"/etc/sysctl.d/60-ns.conf": NS_TEXT, "/etc/sysctl.d/61-host.conf": None},
        ["net.core.somaxconn"],
        {"net.core.somaxconn": "4096\n"},
    )
    assert plan["files"] == {"/etc/sysctl.d/61-host.conf": HOST_TEXT}
    assert plan["set"] == {"net.core.somaxconn": "8192"}
    assert plan["missing"] == []
    assert plan["diff"] == [
        {
            "before_header": "/dev/null",
            "after_header": "/etc/sysctl.d/61-host.conf",
            "before": "",
            "after": HOST_TEXT,
        },
        {
            "before_header": "live values (/proc/sys)",
            "after_header": "live values (/proc/sys)",
            "before": "net.core.somaxconn = 4096\n",
            "after": "net.core.somaxconn = 8192\n",
        },
    ]


def test_stale_key_is_removed_from_its_file():
    old = NS_TEXT + "net.ipv4.tcp_fin_timeout = 30\n"
    plan = sysctl.plan_changes(
        FILES, {"/etc/sysctl.d/60-ns.conf": old, "/etc/sysctl.d/61-host.conf": HOST_TEXT}, [], {}
    )
    assert plan["files"] == {"/etc/sysctl.d/60-ns.conf": NS_TEXT}


def test_keys_without_proc_entry_are_reported_missing():
    plan = sysctl.plan_changes(
        FILES,
        {},
        ["net.core.somaxconn", "vm.swappiness"],
        {"net.core.somaxconn": None, "vm.swappiness": "60"},
    )
    assert plan["missing"] == ["net.core.somaxconn"]
    assert plan["set"] == {"vm.swappiness": "0"}


def test_key_to_apply_must_be_in_a_file():
    with pytest.raises(ValueError, match=r"^keys to apply are in none of the files: kernel.panic$"):
        sysctl.plan_changes(FILES, {}, ["kernel.panic"], {"kernel.panic": "1"})
