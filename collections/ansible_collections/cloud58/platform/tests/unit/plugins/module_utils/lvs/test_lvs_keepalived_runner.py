"""The I/O of keepalived_fnat: check and diff mode, a truthful changed, nothing written on a schema error."""

from __future__ import annotations

import os

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.plan import LvsError
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.runner import run_keepalived

LVS = {
    "directors": {
        "d1": {
            "name": "d1",
            "vips": ["api"],
            "local_addresses": {
                "cidr": "198.18.2.32/31",
                "first": "198.18.2.32",
                "last": "198.18.2.33",
                "count": 2,
            },
        }
    },
    "vips": {
        "api": {
            "name": "api",
            "address": "198.18.2.1",
            "ports": [6443],
            "directors": ["d1"],
            "real_servers": [{"name": "m1", "address": "198.18.0.11", "port": 6443}],
        }
    },
}

CONF = """\
# Managed by cloud58.platform.lvs_director (fnat data plane) for d1; local changes are overwritten.
# DPVS keepalived: lb_kind FNAT, local_address_group and syn_proxy are not stock keepalived.

local_address_group laddr_d1 {
    198.18.2.32-33 dpdk0
}

virtual_server 198.18.2.1 6443 {
    lb_algo wlc
    lb_kind FNAT
    protocol TCP
    laddr_group_name laddr_d1
    real_server 198.18.0.11 6443 {
        TCP_CHECK {
            connect_timeout 3
            retry 3
            delay_before_retry 3
            delay_loop 6
        }
    }
}
"""


def _params(path, **extra):
    return {
        "director": "d1",
        "lvs": LVS,
        "realservers": None,
        "path": str(path),
        "lb_algo": "wlc",
        "syn_proxy": False,
        "laddr_interface": "dpdk0",
        "connect_timeout": 3,
        "retry": 3,
        "delay_before_retry": 3,
        "delay_loop": 6,
        "virtual_server_options": {},
        **extra,
    }


# start: the file's text and mode before (None: absent); expected: changed, the text after
@pytest.mark.parametrize(
    ("start", "check_mode", "expected"),
    [
        pytest.param(None, False, (True, CONF), id="absent-written"),
        pytest.param(None, True, (True, None), id="absent-check-mode-writes-nothing"),
        pytest.param(("old\n", 0o644), False, (True, CONF), id="different-rewritten"),
        pytest.param(("old\n", 0o644), True, (True, "old\n"), id="different-check-mode-keeps-it"),
        pytest.param((CONF, 0o644), False, (False, CONF), id="same-unchanged"),
        pytest.param((CONF, 0o600), False, (True, CONF), id="same-but-mode-fixed"),
    ],
)
def test_run_keepalived(tmp_path, start, check_mode, expected):
    changed, after = expected
    before = start[0] if start else None
    path = tmp_path / "keepalived.conf"
    if start:
        path.write_text(start[0])
        path.chmod(start[1])
    result = run_keepalived(_params(path), check_mode, True, os.replace)
    assert result == {
        "changed": changed,
        "path": str(path),
        "virtual_servers": 1,
        "diff": {
            "before": before or "",
            "after": CONF,
            "before_header": str(path) if before is not None else f"{path} (absent)",
            "after_header": str(path),
        },
    }
    assert (path.read_text() if path.exists() else None) == after
    if after is not None and not check_mode:
        assert path.stat().st_mode & 0o7777 == 0o644


def test_run_keepalived_without_diff_mode_returns_no_diff(tmp_path):
    path = tmp_path / "keepalived.conf"
    assert run_keepalived(_params(path), False, False, os.replace) == {
        "changed": True,
        "path": str(path),
        "virtual_servers": 1,
    }


def test_schema_error_names_file_host_keyword_and_writes_nothing(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_text("old\n")
    with pytest.raises(LvsError) as e:
        run_keepalived(_params(path, virtual_server_options={"syn_proxy": "on"}), False, True, os.replace)
    assert str(e.value) == (
        f"{path} on d1: the generated keepalived configuration breaks the DPVS keyword schema, "
        f"nothing written: {path}:13: virtual_server 198.18.2.1 6443: 'syn_proxy' takes no argument, got 'on'"
    )
    assert path.read_text() == "old\n"
