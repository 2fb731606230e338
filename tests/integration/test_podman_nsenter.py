"""The connection plugin cloud58.lab.podman_nsenter against a real podman container.

One container from the node image (no systemd needed: it sleeps), reached by the real
ansible-playbook with pipelining on and off: commands run inside the container (its
hostname, its files, its PID namespace), files go in and come out byte for byte, and a
container that is not running is reported as unreachable with its name.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "c58-nsenter-test"


def _env(**extra) -> dict:
    return dict(
        os.environ,
        CONTAINERS_CONF=str(REPO / "containers/containers.conf"),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        **extra,
    )


@pytest.fixture(scope="module")
def container():
    env = _env()
    image = subprocess.run(
        [REPO / "scripts/setup/image.sh", "--print-ref"], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    podman = ["podman", "run", "--detach", "--name", CONTAINER, "--hostname", "inside"]
    leftover = ["podman", "rm", "--force", "--ignore", CONTAINER]
    subprocess.run(leftover, capture_output=True, env=env, check=False)
    subprocess.run(
        [*podman, image, "sleep", "infinity"],
        capture_output=True,
        env=env,
        check=True,
    )
    try:
        yield CONTAINER
    finally:
        subprocess.run(
            ["podman", "rm", "--force", "--time", "0", CONTAINER], capture_output=True, env=env, check=False
        )


def _playbook(tmp_path: Path, tasks: list, *, host: str = CONTAINER, pipelining: bool = True):
    play = [{"name": "nsenter", "hosts": host, "gather_facts": False, "tasks": tasks}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            f"{host},",
            "-c",
            "cloud58.lab.podman_nsenter",
            "-e",
            "ansible_python_interpreter=/usr/bin/python3",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=_env(ANSIBLE_PIPELINING=str(pipelining), ANSIBLE_STDOUT_CALLBACK="json"),
        check=False,
        timeout=300,
    )


def _results(run) -> list:
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    plays = json.loads(run.stdout)["plays"]
    return [task["hosts"][CONTAINER] for task in plays[0]["tasks"]]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_commands_and_files_happen_inside_the_container(container, tmp_path, pipelining):
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 40 + b"end")
    fetched = tmp_path / "fetched"
    tasks = [
        {"ansible.builtin.command": "hostname", "changed_when": False},
        {"ansible.builtin.command": "cat /proc/1/comm", "changed_when": False},
        {"ansible.builtin.copy": {"src": str(payload), "dest": "/root/payload.bin", "mode": "0600"}},
        {"ansible.builtin.stat": {"path": "/root/payload.bin", "checksum_algorithm": "sha256"}},
        {"ansible.builtin.fetch": {"src": "/root/payload.bin", "dest": f"{fetched}/", "flat": True}},
        {"ansible.builtin.file": {"path": "/root/payload.bin", "state": "absent"}},
    ]
    run = _playbook(tmp_path, tasks, pipelining=pipelining)
    hostname, init, copied, stat, _fetch, _removed = _results(run)
    assert hostname["stdout"] == "inside"
    assert init["stdout"] == "sleep"  # PID 1 of the container's PID namespace
    assert copied["changed"] is True
    assert (stat["stat"]["size"], stat["stat"]["mode"]) == (256 * 40 + 3, "0600")
    assert stat["stat"]["checksum"] == hashlib.sha256(payload.read_bytes()).hexdigest()
    assert (fetched / "payload.bin").read_bytes() == payload.read_bytes()


def test_a_container_that_is_not_running_is_unreachable_by_name(container, tmp_path):
    run = _playbook(tmp_path, [{"ansible.builtin.ping": {}}], host="c58-nsenter-no-such-container")
    assert run.returncode == 4  # unreachable
    result = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["c58-nsenter-no-such-container"]
    assert result["unreachable"] is True
    assert "podman_nsenter: container 'c58-nsenter-no-such-container' is not running" in result["msg"]
