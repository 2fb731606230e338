"""The sysctl_profile runner on real files: check mode writes nothing, a second run changes
nothing, keys without a /proc/sys entry fail or are skipped as asked."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node.runner import (
    SysctlApplyError,
    run_sysctl_profile,
)

NO_SUCH_KEY = "cloud58.test.no_such_key"


def _params(path, apply=(), missing="fail"):
    values = {"net.core.somaxconn": 8192, NO_SUCH_KEY: 1}
    return {
        "files": [{"path": str(path), "comment": "test", "values": values}],
        "apply": list(apply),
        "missing": missing,
    }


TEXT = f"# test\n{NO_SUCH_KEY} = 1\nnet.core.somaxconn = 8192\n"


def test_check_mode_reports_the_file_and_writes_nothing(tmp_path):
    path = tmp_path / "60-test.conf"
    result = run_sysctl_profile(_params(path), check_mode=True, diff_mode=True, atomic_move=os.replace)
    assert result["changed"] is True
    assert result["files_changed"] == [str(path)]
    assert result["diff"] == [
        {"before_header": "/dev/null", "after_header": str(path), "before": "", "after": TEXT}
    ]
    assert not path.exists()


def test_writes_the_file_then_changes_nothing(tmp_path):
    path = tmp_path / "60-test.conf"
    first = run_sysctl_profile(_params(path), check_mode=False, diff_mode=False, atomic_move=os.replace)
    assert (first["changed"], first["files_changed"], "diff" in first) == (True, [str(path)], False)
    assert path.read_text() == TEXT
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    second = run_sysctl_profile(_params(path), check_mode=False, diff_mode=False, atomic_move=os.replace)
    expected_second = (False, []) if os.geteuid() == 0 else (True, [str(path)])  # owner must be root
    assert (second["changed"], second["files_changed"]) == expected_second


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "run"])
def test_key_without_proc_entry_fails_naming_it(tmp_path, check_mode):
    with pytest.raises(SysctlApplyError, match=f"no /proc/sys entry .*: {NO_SUCH_KEY}$") as err:
        run_sysctl_profile(
            _params(tmp_path / "x.conf", apply=[NO_SUCH_KEY]),
            check_mode=check_mode,
            diff_mode=False,
            atomic_move=os.replace,
        )
    assert err.value.missing == [NO_SUCH_KEY]
    assert not (tmp_path / "x.conf").exists()


def test_key_without_proc_entry_is_skipped_when_asked(tmp_path):
    path = tmp_path / "x.conf"
    result = run_sysctl_profile(
        _params(path, apply=[NO_SUCH_KEY], missing="skip"),
        check_mode=True,
        diff_mode=False,
        atomic_move=os.replace,
    )
    assert (result["missing"], result["applied"], result["files_changed"]) == ([NO_SUCH_KEY], {}, [str(path)])
