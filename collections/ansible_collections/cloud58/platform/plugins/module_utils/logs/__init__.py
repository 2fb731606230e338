# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Central logs (issue 17 item 4): the log store's flags, the shipper's upload URL and the
store each host ships to.

A leaf: it imports nothing of the collection. The store is VictoriaLogs, the shipper Debian's
systemd-journal-upload (docs/monitoring.md). Every bad input is a :class:`LogsError` of one
line naming the field and the bad value, raised before a role changes anything.
"""

from __future__ import annotations

import re

# VictoriaLogs' -retentionPeriod: a positive whole number of hours, days, weeks or years.
_PERIOD = re.compile(r"^[1-9][0-9]{0,5}[hdwy]$")
# A field value the upload URL carries: VictoriaLogs splits extra_fields on ',' and '=', and
# the URL must stay one query string, so values are kept to DNS-label-like characters.
_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_STORE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
# The store's -httpListenAddr: host:port, the host empty for every address.
_LISTEN = re.compile(r"^[0-9A-Za-z.\-\[\]:]*:[0-9]{1,5}$")
MIN_DISK_BYTES = 64 * 1024 * 1024


class LogsError(ValueError):
    """A bad setting of the log store or shipper."""


def upload_url(store: str, fields: dict) -> str:
    """The URL for systemd-journal-upload that makes the store add ``fields`` to every record.

    systemd-journal-upload appends ``/upload`` to whatever URL it is given; the URL therefore
    names the full ingestion path and ends in an empty ``cloud58`` argument that absorbs the
    suffix, so the path stays ``/insert/journald/upload`` and the fields stay intact.
    """
    if not isinstance(store, str) or not _STORE.match(store.rstrip("/")):
        raise LogsError(f"log store URL {store!r}: expected http(s)://host[:port] without a path")
    for name, value in fields.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise LogsError(f"log field name {name!r} is not a lower-case identifier")
        if not isinstance(value, str) or not _VALUE.match(value):
            raise LogsError(f"log field {name}={value!r}: not a DNS-label-like value")
    extra = ",".join(f"{k}={v}" for k, v in fields.items())
    return f"{store.rstrip('/')}/insert/journald/upload?extra_fields={extra}&cloud58="


def store_args(retention_period, max_disk_bytes, listen: str, data_dir: str) -> list:
    """VictoriaLogs' command-line flags for these settings (retention by age and by size)."""
    if not isinstance(retention_period, str) or not _PERIOD.match(retention_period):
        raise LogsError(
            f"log_store_retention_period={retention_period!r}: expected a positive number"
            " with h, d, w or y (e.g. 30d)"
        )
    if (
        isinstance(max_disk_bytes, bool)
        or not isinstance(max_disk_bytes, int)
        or max_disk_bytes < MIN_DISK_BYTES
    ):
        raise LogsError(
            f"log_store_max_disk_bytes={max_disk_bytes!r}: expected an integer of at least {MIN_DISK_BYTES}"
        )
    if not isinstance(listen, str) or not _LISTEN.match(listen):
        raise LogsError(f"log_store_listen={listen!r}: expected host:port")
    if not isinstance(data_dir, str) or not data_dir.startswith("/"):
        raise LogsError(f"log_store_data_dir={data_dir!r}: expected an absolute path")
    return [
        f"-storageDataPath={data_dir}",
        f"-httpListenAddr={listen}",
        f"-retentionPeriod={retention_period}",
        f"-retention.maxDiskSpaceUsageBytes={max_disk_bytes}",
    ]


def shipper_target(plan, host: str, store_hosts, listen: str) -> dict:
    """Where ``host`` ships its journal and the fields it adds: the log store of the host's
    datacenter (the first of ``store_hosts`` in it, by name), reached at that store's plan
    address unless ``listen`` (the store's host:port) names one address; the host's datacenter
    and cluster (empty for a host in no cluster)."""
    hosts = plan.get("hosts") if isinstance(plan, dict) else None
    if not isinstance(hosts, dict) or host not in hosts:
        raise LogsError(f"host {host!r} is not in the plan")
    datacenter = hosts[host]["datacenter"]
    stores = sorted(h for h in store_hosts if h in hosts and hosts[h]["datacenter"] == datacenter)
    if not stores:
        raise LogsError(
            f"host {host!r}: datacenter {datacenter!r} has no log store among {sorted(store_hosts)}"
            " (inventory group logs, else the datacenter's Prometheus host)"
        )
    if not isinstance(listen, str) or not _LISTEN.match(listen):
        raise LogsError(f"log_store_listen={listen!r}: expected host:port")
    address, port = listen.rsplit(":", 1)
    address = address.strip("[]")
    if address.startswith("127.") or address in ("localhost", "::1"):
        raise LogsError(
            f"log_store_listen={listen!r} on {stores[0]}: the shippers of datacenter {datacenter!r}"
            " cannot reach a loopback address"
        )
    if address in ("", "0.0.0.0", "::"):
        address = hosts[stores[0]]["address"]
    if ":" in address:
        address = f"[{address}]"
    return {
        "store_url": f"http://{address}:{port}",
        "datacenter": datacenter,
        "cluster": hosts[host].get("cluster") or "",
    }
