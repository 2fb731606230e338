"""Systemd host containers from the node image, and what they need from this machine.

The node benchmark starts its containers with :func:`start_containers`; the lab's
datacenters start theirs in staticpods.py (on each datacenter's network, at the plan's
addresses). :func:`recap` reads a playbook run's PLAY RECAP.

Twenty systemd containers with containerd and a kubelet each need a few hundred inotify
instances of the host's root user; Debian's default of 128 leaves the last containers
unable to boot. :func:`raise_inotify_instances` raises the limit to 8192 (the value
kernel_tuning gives nodes) while they run; :func:`restore_inotify_instances` puts the old
value back, unless someone changed it meanwhile.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from cloud58_lab import programs

REPO = Path(__file__).resolve().parents[2]
LABEL = "cloud58.io/lab=nodes"
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_NEEDED = 8192


class NodesError(RuntimeError):
    """Containers did not start or boot, or the node roles failed on them."""


def podman_env() -> dict:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(REPO / "containers/containers.conf"))
    return env


def _podman(args: list, env: dict, timeout: float = 120) -> str:
    proc = subprocess.run(
        programs.argv("podman", *args), capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise NodesError(f"podman {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


# How a host container runs systemd on this cgroup v1 hybrid machine, whose own PID 1 is not
# systemd. Podman's --systemd=always bind-mounts the machine's whole name=systemd hierarchy over
# the container's /sys/fs/cgroup/systemd; with a private cgroup namespace, /proc/1/cgroup then
# names a path that does not match that mount, and every host's systemd put its units in the
# same shared /system.slice/<unit>, where one host's systemd trimmed another's empty cgroups
# (seen: runc in a minion failing with "stat /sys/fs/cgroup/systemd/system.slice/
# containerd.service: no such file"). Without that mount the private namespace's own
# name=systemd mount stays in place: each host's systemd has its own subtree. The rest is what
# --systemd=always would add.
SYSTEMD_HOST_FLAGS = (
    "--privileged",
    # The kubelet's pod cgroups nest under the container's own (kubelet-spike E3).
    "--cgroupns=private",
    "--systemd=false",
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--tmpfs=/tmp",
    "--tmpfs=/var/log/journal",
    "--stop-signal=SIGRTMIN+3",
    "--env=container=podman",
)


def start_containers(
    containers: dict[str, str], image: str, label: str, env: dict, *, boot_timeout: float = 180
) -> None:
    """Start systemd containers (container name -> hostname) from ``image`` with ``label`` and
    wait until systemd in each reports running or degraded (the verifiers name failed units)."""
    for container, hostname in containers.items():
        _podman(
            ["run", "--detach", "--name", container, "--hostname", hostname, "--label", label,
             *SYSTEMD_HOST_FLAGS, image, "/sbin/init"],
            env,
        )  # fmt: skip
    for container in containers:
        deadline = time.monotonic() + boot_timeout
        while True:
            state = subprocess.run(
                programs.argv("podman", "exec", container, "systemctl", "is-system-running"),
                capture_output=True, text=True, env=env, timeout=60, check=False,
            ).stdout.strip()  # fmt: skip
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise NodesError(f"{container}: systemd did not finish booting (state {state!r})")
            time.sleep(0.5)


def remove_containers(names: list[str], env: dict) -> list[str]:
    """Remove containers by their exact names; problems as text."""
    if not names:
        return []
    proc = subprocess.run(
        programs.argv("podman", "rm", "--force", "--ignore", "--time", "0", *names),
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    return [f"podman rm: {proc.stderr.strip()}"] if proc.returncode != 0 else []


def raise_inotify_instances(out=print) -> int | None:
    """Raise the host's inotify instance limit; the old value, or None when it was high enough."""
    current = int(INOTIFY_INSTANCES.read_text())
    if current >= INOTIFY_NEEDED:
        return None
    INOTIFY_INSTANCES.write_text(f"{INOTIFY_NEEDED}\n")
    out(f"fs.inotify.max_user_instances raised from {current} to {INOTIFY_NEEDED} while the containers run")
    return current


def restore_inotify_instances(old: int | None, out=print) -> None:
    if old is None or int(INOTIFY_INSTANCES.read_text()) != INOTIFY_NEEDED:
        return  # untouched by us, or changed by someone else meanwhile: leave it
    INOTIFY_INSTANCES.write_text(f"{old}\n")
    out(f"fs.inotify.max_user_instances back to {old}")


def recap(output: str) -> dict:
    """{host: {ok, changed, unreachable, failed, ...}} from the PLAY RECAP of a run."""
    found = {}
    for line in output.rsplit("PLAY RECAP", maxsplit=1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(ok=.*)$", line)
        if match:
            found[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return found


def checked_recap(result, label: str, expect_no_change: bool) -> dict:
    """The recap of a finished ansible-playbook run (a CompletedProcess), or NodesError naming
    ``label``: a non-zero exit, a failed or unreachable host, no recap at all, or, with
    ``expect_no_change``, any host that changed something."""
    found = recap(result.stdout)
    bad = {h: r for h, r in found.items() if r.get("failed") or r.get("unreachable")}
    if result.returncode != 0 or bad or not found:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise NodesError(f"{label} failed (rc {result.returncode}, {bad}):\n{tail}")
    if expect_no_change:
        changed = {h: r["changed"] for h, r in found.items() if r.get("changed")}
        if changed:
            raise NodesError(f"{label} is not a no-op: changed tasks per host {changed}")
    return found
