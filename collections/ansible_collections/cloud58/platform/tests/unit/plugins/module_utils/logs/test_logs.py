"""Central logs: VictoriaLogs' flags and the systemd-journal-upload URL, and every bad value."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.logs import (
    LogsError,
    shipper_target,
    store_args,
    upload_url,
)


def test_upload_url_names_the_full_path_and_absorbs_the_suffix() -> None:
    url = upload_url(
        "http://10.0.0.1:9428/", {"datacenter": "lab1", "cluster": "lab1-k8s", "node": "lab1-n1"}
    )
    assert url == (
        "http://10.0.0.1:9428/insert/journald/upload"
        "?extra_fields=datacenter=lab1,cluster=lab1-k8s,node=lab1-n1&cloud58="
    )
    # What systemd-journal-upload sends to: the path is unchanged, the suffix is a value.
    assert (url + "/upload").split("?", maxsplit=1)[0].endswith("/insert/journald/upload")


@pytest.mark.parametrize(
    ("store", "fields", "message"),
    [
        (
            "http://h:9428/x",
            {},
            "log store URL 'http://h:9428/x': expected http(s)://host[:port] without a path",
        ),
        ("h:9428", {}, "log store URL 'h:9428': expected http(s)://host[:port] without a path"),
        ("http://h:9428", {"node": "a,b"}, "log field node='a,b': not a DNS-label-like value"),
        ("http://h:9428", {"node": "a=b"}, "log field node='a=b': not a DNS-label-like value"),
        ("http://h:9428", {"node": ""}, "log field node='': not a DNS-label-like value"),
        ("http://h:9428", {"node": 3}, "log field node=3: not a DNS-label-like value"),
        ("http://h:9428", {"Node": "n"}, "log field name 'Node' is not a lower-case identifier"),
    ],
)
def test_upload_url_bad_input(store, fields, message) -> None:
    with pytest.raises(LogsError) as e:
        upload_url(store, fields)
    assert str(e.value) == message


def test_store_args() -> None:
    assert store_args("30d", 1 << 30, "0.0.0.0:9428", "/var/lib/victoria-logs") == [
        "-storageDataPath=/var/lib/victoria-logs",
        "-httpListenAddr=0.0.0.0:9428",
        "-retentionPeriod=30d",
        "-retention.maxDiskSpaceUsageBytes=1073741824",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("0", 1 << 30, ":9428", "/d"),
            "log_store_retention_period='0': expected a positive number with h, d, w or y (e.g. 30d)",
        ),
        (
            ("0d", 1 << 30, ":9428", "/d"),
            "log_store_retention_period='0d': expected a positive number with h, d, w or y (e.g. 30d)",
        ),
        (
            ("30", 1 << 30, ":9428", "/d"),
            "log_store_retention_period='30': expected a positive number with h, d, w or y (e.g. 30d)",
        ),
        (("30d", 0, ":9428", "/d"), "log_store_max_disk_bytes=0: expected an integer of at least 67108864"),
        (
            ("30d", True, ":9428", "/d"),
            "log_store_max_disk_bytes=True: expected an integer of at least 67108864",
        ),
        (
            ("30d", "1G", ":9428", "/d"),
            "log_store_max_disk_bytes='1G': expected an integer of at least 67108864",
        ),
        (("30d", 1 << 30, "9428", "/d"), "log_store_listen='9428': expected host:port"),
        (("30d", 1 << 30, ":9428", "d"), "log_store_data_dir='d': expected an absolute path"),
    ],
)
def test_store_args_bad_input(args, message) -> None:
    with pytest.raises(LogsError) as e:
        store_args(*args)
    assert str(e.value) == message


# Two datacenters; dc2's store host has an IPv6 address, h4 is in no cluster.
PLAN = {
    "hosts": {
        "m1": {"datacenter": "dc1", "address": "10.0.0.11", "cluster": "dc1-k8s"},
        "m2": {"datacenter": "dc1", "address": "10.0.0.12", "cluster": "dc1-k8s"},
        "w1": {"datacenter": "dc1", "address": "10.0.0.21", "cluster": "dc1-k8s"},
        "lvs1": {"datacenter": "dc1", "address": "10.0.0.31"},
        "m9": {"datacenter": "dc2", "address": "fd00::9", "cluster": "dc2-k8s"},
    }
}


@pytest.mark.parametrize(
    ("host", "stores", "listen", "expected"),
    [
        ("w1", ["m2", "m1", "m9"], "0.0.0.0:9428", ("http://10.0.0.11:9428", "dc1", "dc1-k8s")),
        ("m1", ["m1"], ":9500", ("http://10.0.0.11:9500", "dc1", "dc1-k8s")),
        ("lvs1", ["m1"], "[::]:9428", ("http://10.0.0.11:9428", "dc1", "")),
        ("w1", ["m1"], "10.9.9.9:9428", ("http://10.9.9.9:9428", "dc1", "dc1-k8s")),
        ("m9", ["m1", "m9"], "0.0.0.0:9428", ("http://[fd00::9]:9428", "dc2", "dc2-k8s")),
    ],
)
def test_shipper_target_is_the_store_of_the_hosts_datacenter(host, stores, listen, expected) -> None:
    target = shipper_target(PLAN, host, stores, listen)
    assert (target["store_url"], target["datacenter"], target["cluster"]) == expected


@pytest.mark.parametrize(
    ("host", "stores", "listen", "message"),
    [
        ("x1", ["m1"], ":9428", "host 'x1' is not in the plan"),
        (
            "m9",
            ["m1", "gone"],
            ":9428",
            "host 'm9': datacenter 'dc2' has no log store among ['gone', 'm1'] (inventory group logs,"
            " else the datacenter's Prometheus host)",
        ),
        (
            "w1",
            ["m1"],
            "127.0.0.1:9428",
            "log_store_listen='127.0.0.1:9428' on m1: the shippers of datacenter 'dc1' cannot reach"
            " a loopback address",
        ),
        ("w1", ["m1"], "9428", "log_store_listen='9428': expected host:port"),
    ],
)
def test_shipper_target_bad_input(host, stores, listen, message) -> None:
    with pytest.raises(LogsError) as e:
        shipper_target(PLAN, host, stores, listen)
    assert str(e.value) == message
