"""Lab hosts as podman systemd containers, given the node roles by ``playbooks/nodes.yml``.

``make lab`` (``lab.up``) starts one container per lab host the node roles apply to (the
masters, minions and LVS directors of ``inventories/lab``), named ``c58node-<host>``, from
the node image, and converges them with the real playbook through an inventory overlay
(connection ``cloud58.lab.podman_nsenter``; the kubelet binary from the build cache;
the containers' veth as the NIC to steer). The containers are on podman's default network:
nothing sends them traffic, their package manager reaches the Debian mirror.

The node benchmark starts its containers the same way (:func:`start_containers`).

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

import yaml

from cloud58_lab import programs

REPO = Path(__file__).resolve().parents[2]
PREFIX = "c58node-"
LABEL = "cloud58.io/lab=nodes"
NODE_ROLES = ("master", "minion", "lvs")  # the plan's roles of the hosts playbooks/nodes.yml targets
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_NEEDED = 8192
CONVERGE_TIMEOUT_S = 1800


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


def start_containers(
    containers: dict[str, str], image: str, label: str, env: dict, *, boot_timeout: float = 180
) -> None:
    """Start systemd containers (container name -> hostname) from ``image`` with ``label`` and
    wait until systemd in each reports running or degraded (the verifiers name failed units)."""
    for container, hostname in containers.items():
        _podman(
            ["run", "--detach", "--name", container, "--hostname", hostname, "--label", label,
             "--privileged", "--systemd=always", image, "/sbin/init"],
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


def node_hosts(plan: dict) -> list[str]:
    """Lab hosts the node roles apply to, sorted."""
    return sorted(h for h, host in plan["hosts"].items() if set(host["roles"]) & set(NODE_ROLES))


def overlay(hosts: list[str], bin_dir: Path, prefix: str = PREFIX) -> dict:
    """Inventory overlay: how Ansible reaches each container, what differs in a container."""
    return {
        "all": {
            "hosts": {
                h: {"ansible_connection": "cloud58.lab.podman_nsenter", "ansible_host": prefix + h}
                for h in hosts
            },
            "vars": {
                "ansible_python_interpreter": "/usr/bin/python3",
                # The container's veth is the NIC whose queues are steered.
                "kernel_tuning_nics": ["eth0"],
                # Standalone kubelet: the lab's API servers are processes on the host.
                "kubelet_kubeconfig": "",
                "kubelet_local_binary": str(bin_dir / "kubelet"),
            },
        }
    }


def converge(
    inventory: Path, hosts: list[str], workdir: Path, bin_dir: Path, env: dict, *, prefix: str = PREFIX
) -> dict:
    """Run playbooks/nodes.yml on the containers; the recap, or NodesError with the output's tail."""
    path = workdir / "nodes-overlay.yml"
    path.write_text(yaml.safe_dump(overlay(hosts, bin_dir, prefix), sort_keys=True))
    run_env = dict(
        env,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(workdir / "facts"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    run_env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        [
            str(REPO / "collections"),
            str(REPO / "lab/collections"),
            os.path.expanduser("~/.ansible/collections"),
        ]
    )
    proc = subprocess.run(
        programs.argv("ansible-playbook", "-i", inventory, "-i", path, REPO / "playbooks/nodes.yml"),
        capture_output=True, text=True, env=run_env, timeout=CONVERGE_TIMEOUT_S, check=False, cwd=REPO,
    )  # fmt: skip
    log = workdir / "nodes-converge.log"
    log.write_text(proc.stdout + proc.stderr)
    found = recap(proc.stdout)
    bad = {h: r for h, r in found.items() if r.get("failed") or r.get("unreachable")}
    if proc.returncode != 0 or bad or set(hosts) - set(found):
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise NodesError(
            f"playbooks/nodes.yml failed on the lab containers (rc {proc.returncode}; log {log}):\n{tail}"
        )
    return {h: found[h] for h in hosts}
