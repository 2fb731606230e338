# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters of the central logs (issue 17 item 4), over module_utils/logs.

log_upload_url(store_url, fields) -> the systemd-journal-upload URL adding ``fields``;
log_store_args(retention_period, max_disk_bytes, listen, data_dir) -> VictoriaLogs' flags;
log_shipper_target(plan, host, store_hosts, listen) -> the store URL, datacenter and cluster
of a host's shipper.
A bad value fails with one line naming the variable or field and the value.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.logs import (
    LogsError,
    shipper_target,
    store_args,
    upload_url,
)


def log_upload_url(store_url, fields):
    try:
        return upload_url(store_url, dict(fields))
    except LogsError as e:
        raise AnsibleFilterError(f"log_upload_url: {e}") from e


def log_store_args(retention_period, max_disk_bytes, listen, data_dir):
    try:
        return store_args(retention_period, max_disk_bytes, listen, data_dir)
    except LogsError as e:
        raise AnsibleFilterError(f"log_store_args: {e}") from e


def log_shipper_target(plan, host, store_hosts, listen="0.0.0.0:9428"):
    try:
        return shipper_target(plan, host, list(store_hosts), listen)
    except LogsError as e:
        raise AnsibleFilterError(f"log_shipper_target: {e}") from e


class FilterModule:
    def filters(self):
        return {
            "log_shipper_target": log_shipper_target,
            "log_store_args": log_store_args,
            "log_upload_url": log_upload_url,
        }
