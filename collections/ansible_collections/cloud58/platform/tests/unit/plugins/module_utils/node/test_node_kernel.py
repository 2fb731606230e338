"""The kernel profile: sizes from facts, key scopes, override validation, the container split."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node import kernel
from ansible_collections.cloud58.platform.plugins.module_utils.node.errors import NodePlanError

REAL = kernel.NodeFacts(
    "node1", vcpus=16, memtotal_mb=65536, kernel=(6, 1), in_container=False, nic_speeds_mbps=(1000, 25000)
)
CONTAINER = kernel.NodeFacts("mol1", vcpus=2, memtotal_mb=24000, kernel=(6, 18), in_container=True)
MINION = kernel.NodeRole(kubernetes=True, nics=("eth0",))
DIRECTOR = kernel.NodeRole(kubernetes=False, lvs_director=True)


@pytest.mark.parametrize(
    ("memtotal_mb", "expected"),
    [
        pytest.param(1024, (131072, 32768), id="small-host-floor"),
        pytest.param(24000, (524288, 131072), id="24g"),
        pytest.param(65536, (2097152, 524288), id="64g"),
        pytest.param(1048576, (8388608, 2097152), id="1t-ceiling"),
    ],
)
def test_conntrack_sizes_follow_memory(memtotal_mb, expected):
    assert kernel.conntrack_sizes(memtotal_mb) == expected


@pytest.mark.parametrize(
    ("vcpus", "expected"),
    [
        pytest.param(1, (4096, 8192), id="1-cpu-floor"),
        pytest.param(16, (32768, 65536), id="16-cpus"),
        pytest.param(96, (65535, 131070), id="96-cpus-ceiling"),
    ],
)
def test_backlogs_follow_cpus(vcpus, expected):
    assert kernel.backlogs(vcpus) == expected


@pytest.mark.parametrize(
    ("speeds", "expected"),
    [
        pytest.param((), 16384, id="unknown-speed"),
        pytest.param((1000,), 4096, id="1g"),
        pytest.param((1000, 10000), 16384, id="fastest-10g"),
        pytest.param((25000,), 32768, id="25g"),
        pytest.param((100000,), 65536, id="100g"),
    ],
)
def test_netdev_backlog_follows_fastest_nic(speeds, expected):
    assert kernel.netdev_backlog(speeds) == expected


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        pytest.param(kernel.NodeRole(), ("10240 65535", "10248-10259,30000-32767"), id="kubernetes-node"),
        pytest.param(DIRECTOR, ("10240 65535", ""), id="not-kubernetes"),
        pytest.param(
            kernel.NodeRole(nodeport_range=(20000, 22767)),
            ("10240 65535", "10248-10259,20000-22767"),
            id="custom-nodeports",
        ),
        pytest.param(
            kernel.NodeRole(nodeport_range=(5000, 7767)), ("10240 65535", "10248-10259"), id="nodeports-below"
        ),
    ],
)
def test_local_ports_reserve_listener_ports(role, expected):
    assert kernel.local_ports(role) == expected


@pytest.mark.parametrize(
    ("key", "kernel_version", "scope", "in_container"),
    [
        pytest.param("net.core.somaxconn", (6, 18), "netns", True, id="somaxconn"),
        pytest.param("net.ipv4.conf.eth0.rp_filter", (6, 1), "netns", True, id="per-interface"),
        pytest.param("net.ipv4.conf.eth0/100.rp_filter", (6, 1), "netns", True, id="vlan-interface"),
        pytest.param("net.netfilter.nf_conntrack_max", (6, 18), "host", False, id="conntrack-max-ro"),
        pytest.param("net.core.netdev_max_backlog", (6, 18), "host", False, id="netdev-backlog-global"),
        pytest.param("vm.swappiness", (6, 18), "host", False, id="vm"),
        pytest.param("kernel.pid_max", (6, 13), "host", False, id="pid-max-before-6.14"),
        pytest.param("kernel.pid_max", (6, 14), "pidns", True, id="pid-max-since-6.14"),
    ],
)
def test_key_scope(key, kernel_version, scope, in_container):
    assert kernel.key_scope(key, kernel_version) == scope
    assert kernel.applies_in_container(key, kernel_version) is in_container


def test_key_scope_of_unknown_key_raises():
    with pytest.raises(KeyError):
        kernel.key_scope("net.core.nonsense", (6, 1))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        pytest.param("net.core.somaxconn", 32768, "32768", id="int"),
        pytest.param("net.core.somaxconn", " 1024 ", "1024", id="int-as-text"),
        pytest.param("net.ipv4.ip_local_port_range", "1024   65000", "1024 65000", id="pair-text"),
        pytest.param("net.ipv4.ip_local_port_range", [2000, 3001], "2000 3001", id="pair-list"),
        pytest.param(
            "net.ipv4.ip_local_reserved_ports",
            "30000-32767, 10250,10248-10251",
            "10248-10251,30000-32767",
            id="ports-merged",
        ),
        pytest.param("net.ipv4.ip_local_reserved_ports", [22, 23, 24], "22-24", id="ports-adjacent"),
    ],
)
def test_normalize_value(key, value, expected):
    assert kernel.normalize_value(key, value) == expected


def test_validate_overrides_later_source_wins():
    merged = kernel.validate_overrides(
        "n1",
        [
            ("group", {"net.core.somaxconn": 8192, "vm.swappiness": 1}),
            ("host", {"net.core.somaxconn": "16384"}),
        ],
    )
    assert merged == {"net.core.somaxconn": "16384", "vm.swappiness": "1"}


def test_validate_overrides_reports_every_problem_with_host_and_hints():
    with pytest.raises(NodePlanError) as err:
        kernel.validate_overrides(
            "node7",
            [
                ("kernel_tuning_overrides", {"net.core.somaxcon": 1024, "vm.swappiness": 500}),
                (
                    "kernel_tuning_host_overrides",
                    {"net.ipv4.ip_local_port_range": "60000 1024", "kernel.panic_on_oops": True},
                ),
            ],
        )
    assert err.value.host == "node7"
    assert err.value.problems == [
        "kernel_tuning_overrides: unknown sysctl key 'net.core.somaxcon'; did you mean 'net.core.somaxconn'?",
        "kernel_tuning_overrides: vm.swappiness = 500: 500 is outside the allowed range 0..200",
        "kernel_tuning_host_overrides: kernel.panic_on_oops = True: "
        "a boolean is not a number here; write 0 or 1",
        "kernel_tuning_host_overrides: net.ipv4.ip_local_port_range = '60000 1024': "
        "'60000 1024' is not an ascending pair inside the allowed range 1024..65535",
    ]
    assert str(err.value).startswith("host 'node7': 4 problems:\n  - kernel_tuning_overrides: unknown")


@pytest.mark.parametrize(
    ("sources", "problem"),
    [
        pytest.param([("o", {"foo.bar": 1})], "o: unknown sysctl key 'foo.bar'", id="unknown-no-hint"),
        pytest.param(
            [("o", ["net.core.somaxconn"])],
            "o must be a mapping of sysctl key to value, got list",
            id="not-a-mapping",
        ),
        pytest.param(
            [("o", {"net.core.somaxconn": "lots"})],
            "o: net.core.somaxconn = 'lots': expected an integer, got 'lots' (str)",
            id="not-a-number",
        ),
        pytest.param(
            [("o", {"net.ipv4.ip_local_reserved_ports": "30000-2"})],
            "o: net.ipv4.ip_local_reserved_ports = '30000-2': '30000-2' is not an ascending range "
            "inside 1..65535",
            id="bad-port-range",
        ),
        pytest.param(
            [("o", {"net.ipv4.conf.eth0.rp_filtr": 0})],
            "o: unknown sysctl key 'net.ipv4.conf.eth0.rp_filtr'; did you mean "
            "'net.ipv4.conf.<iface>.rp_filter'?",
            id="interface-key-typo",
        ),
    ],
)
def test_validate_overrides_single_problem(sources, problem):
    with pytest.raises(NodePlanError) as err:
        kernel.validate_overrides("h", sources)
    assert err.value.problems == [problem]


def test_profile_in_container_applies_only_namespaced_keys():
    profile = kernel.kernel_profile(CONTAINER, MINION)
    assert profile["apply"] == [
        "kernel.pid_max",
        "net.bridge.bridge-nf-call-ip6tables",
        "net.bridge.bridge-nf-call-iptables",
        "net.core.somaxconn",
        "net.ipv4.conf.all.rp_filter",
        "net.ipv4.conf.default.rp_filter",
        "net.ipv4.conf.eth0.rp_filter",
        "net.ipv4.fib_multipath_hash_policy",
        "net.ipv4.fib_multipath_use_neigh",
        "net.ipv4.ip_forward",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_max_syn_backlog",
        "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
        "net.netfilter.nf_conntrack_tcp_timeout_established",
    ]
    assert set(profile["written_only"]) == set(profile["sysctl"]) - set(profile["apply"])
    assert "vm.swappiness" in profile["written_only"]
    assert profile["files"]["namespaced"] == {k: profile["sysctl"][k] for k in profile["apply"]}
    assert profile["in_container"] is True
    assert profile["notes"][0] == (
        "container: 15 namespaced keys applied; 16 keys written to "
        "sysctl.d but not applied (they are global to the host kernel)"
    )


def test_profile_on_real_host_applies_everything_with_computed_values():
    profile = kernel.kernel_profile(REAL, MINION)
    assert profile["apply"] == sorted(profile["sysctl"])
    assert profile["written_only"] == []
    assert profile["notes"] == []
    expected = {
        "net.netfilter.nf_conntrack_max": "2097152",
        "net.netfilter.nf_conntrack_buckets": "524288",
        "net.core.somaxconn": "32768",
        "net.ipv4.tcp_max_syn_backlog": "65536",
        "net.core.netdev_max_backlog": "32768",
        "fs.inotify.max_user_watches": "2097152",
        "fs.file-max": "8388608",
        "vm.swappiness": "0",
        "net.ipv4.conf.all.rp_filter": "0",
        "net.bridge.bridge-nf-call-iptables": "1",
    }
    assert expected.items() <= profile["sysctl"].items()
    # kernel 6.1: pid_max is global there, so it is in the host file.
    assert "kernel.pid_max" in profile["files"]["host"]
    assert profile["modprobe_options"] == {"nf_conntrack": {"hashsize": "524288"}}


def test_profile_of_lvs_director():
    profile = kernel.kernel_profile(REAL, DIRECTOR)
    assert profile["modules"] == [
        "overlay",
        "br_netfilter",
        "nf_conntrack",
        "ip_vs",
        "ip_vs_rr",
        "ip_vs_wrr",
        "ip_vs_wlc",
        "ip_vs_sh",
    ]
    assert "net.bridge.bridge-nf-call-iptables" not in profile["sysctl"]
    assert "net.ipv4.ip_local_reserved_ports" not in profile["sysctl"]


def test_profile_of_real_server_loads_toa():
    profile = kernel.kernel_profile(REAL, kernel.NodeRole(lvs_real_server=True))
    assert profile["modules"] == ["overlay", "br_netfilter", "nf_conntrack", "toa"]


def test_bridge_keys_are_written_only_without_br_netfilter():
    facts = kernel.NodeFacts("mol1", 2, 24000, (6, 18), True, (), bridge_nf_available=False)
    profile = kernel.kernel_profile(facts, MINION)
    assert "net.bridge.bridge-nf-call-iptables" not in profile["apply"]
    assert profile["reasons"]["net.bridge.bridge-nf-call-iptables"] == (
        "br_netfilter is not loaded, so /proc/sys/net/bridge does not exist"
    )


def test_overridden_conntrack_max_takes_the_hash_along():
    profile = kernel.kernel_profile(REAL, MINION, [("o", {"net.netfilter.nf_conntrack_max": 1000000})])
    assert profile["sysctl"]["net.netfilter.nf_conntrack_max"] == "1000000"
    assert profile["sysctl"]["net.netfilter.nf_conntrack_buckets"] == "250000"
    assert profile["modprobe_options"] == {"nf_conntrack": {"hashsize": "250000"}}


@pytest.mark.parametrize(
    ("overrides", "nofile", "problem"),
    [
        pytest.param(
            [],
            2097152,
            "nofile limit 2097152 is outside the allowed range 1024..1048576 (fs.nr_open)",
            id="nofile-above-nr-open",
        ),
        pytest.param(
            [("o", {"net.netfilter.nf_conntrack_max": 100000, "net.netfilter.nf_conntrack_buckets": 200000})],
            1048576,
            "net.netfilter.nf_conntrack_buckets = 200000 exceeds net.netfilter.nf_conntrack_max = 100000",
            id="buckets-above-max",
        ),
        pytest.param(
            [("o", {"net.ipv4.ip_local_reserved_ports": "10248-10259"})],
            1048576,
            "net.ipv4.ip_local_port_range 10240-65535 overlaps the NodePort range 30000-32767, which "
            "net.ipv4.ip_local_reserved_ports does not cover",
            id="nodeports-not-reserved",
        ),
    ],
)
def test_profile_cross_checks(overrides, nofile, problem):
    with pytest.raises(NodePlanError) as err:
        kernel.kernel_profile(REAL, MINION, overrides, nofile=nofile)
    assert err.value.problems == [problem]


def test_port_range_clear_of_nodeports_needs_no_reservation():
    profile = kernel.kernel_profile(
        REAL,
        MINION,
        [("o", {"net.ipv4.ip_local_port_range": "32768 60999", "net.ipv4.ip_local_reserved_ports": "10250"})],
    )
    assert profile["sysctl"]["net.ipv4.ip_local_reserved_ports"] == "10250"


def _facts(**extra):
    facts = {
        "hostname": "n1",
        "processor_vcpus": 4,
        "memtotal_mb": 8000,
        "kernel": "6.18.44-fc-v769",
        "virtualization_role": "host",
        "virtualization_type": "kvm",
        "interfaces": ["lo", "eth0", "eth1", "bond0.100"],
        "eth0": {"type": "ether", "speed": 10000},
        "eth1": {"type": "ether", "speed": -1},
        "bond0_100": {"type": "ether", "speed": 25000},
        "lo": {"type": "loopback"},
    }
    facts.update(extra)
    return facts


@pytest.mark.parametrize(
    ("facts", "container_env", "in_container"),
    [
        pytest.param(_facts(), False, False, id="kvm-host"),
        pytest.param(
            _facts(virtualization_role="guest", virtualization_type="podman"), False, True, id="podman"
        ),
        pytest.param(
            _facts(virtualization_role="guest", virtualization_type="kvm"), False, False, id="vm-guest"
        ),
        pytest.param(_facts(), True, True, id="containerenv-file"),
    ],
)
def test_node_facts_detects_containers(facts, container_env, in_container):
    result = kernel.node_facts(facts, container_env=container_env)
    assert result == kernel.NodeFacts("n1", 4, 8000, (6, 18), in_container, (10000, 25000), True)


def test_node_facts_without_hardware_facts_names_the_fix():
    with pytest.raises(NodePlanError) as err:
        kernel.node_facts({"hostname": "n2", "kernel": "x"})
    assert err.value.problems == [
        "fact processor_vcpus is None; gather the hardware facts (gather_subset: hardware)",
        "fact memtotal_mb is None; gather the hardware facts (gather_subset: hardware)",
        "fact kernel is 'x'; gather the kernel facts",
    ]


def test_bridge_keys_apply_on_real_host_before_br_netfilter_is_loaded():
    facts = kernel.NodeFacts("n1", 4, 8000, (6, 1), False, (), bridge_nf_available=False)
    profile = kernel.kernel_profile(facts, MINION)
    assert "net.bridge.bridge-nf-call-iptables" in profile["apply"]
    assert profile["written_only"] == []
