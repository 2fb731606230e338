# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters of the central logs (issue 17 item 4), over module_utils/logs.

log_upload_url(store_url, fields) -> the systemd-journal-upload URL adding ``fields``;
log_store_args(retention_period, max_disk_bytes, listen, data_dir) -> VictoriaLogs' flags.
A bad value fails with one line naming the variable or field and the value.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.logs import LogsError, store_args, upload_url


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


class FilterModule:
    def filters(self):
        return {"log_store_args": log_store_args, "log_upload_url": log_upload_url}
