# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Connection plugin: run tasks in a local podman container by entering its namespaces."""

from __future__ import annotations

DOCUMENTATION = r"""
name: podman_nsenter
short_description: Run tasks in a local podman container through nsenter
description:
  - Runs commands in a running podman container on the controller by entering the
    namespaces (mount, UTS, IPC, network, PID, cgroup) of the container's first process
    with C(nsenter), instead of starting C(podman exec) for every command.
  - C(podman exec) starts podman, conmon and runc for each command, and Ansible needs
    three or four commands per task without pipelining, which the podman connection does
    not support. One C(nsenter) per task, with pipelining, is what makes molecule
    scenarios, the control-plane lab and the node benchmark fit in CI on a small machine.
  - For test and lab containers on the controller only. Production hosts use SSH.
  - Needs root on the controller (rootful podman) and the C(nsenter) program (util-linux).
  - The container's first process is looked up once per task with C(podman inspect).
    Files are streamed through the same C(nsenter), so paths resolve inside the container.
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
extends_documentation_fragment:
  - ansible.builtin.connection_pipelining
options:
  remote_addr:
    description: Name or ID of the container.
    default: inventory_hostname
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_podman_host
  podman_executable:
    description: The podman program used to find the container's first process.
    default: podman
    type: str
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  nsenter_executable:
    description: The nsenter program.
    default: nsenter
    type: str
    vars:
      - name: cloud58_nsenter_executable
  path:
    description: E(PATH) of the commands run in the container (the controller's environment is not passed on).
    default: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    type: str
    vars:
      - name: cloud58_nsenter_path
notes:
  - Supports pipelining; the repository's ansible.cfg turns it on, molecule scenarios set
    C(ansible_pipelining).
"""

import os
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

NAMESPACES = ("--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup")


class Connection(ConnectionBase):
    """Commands and files go through nsenter into the container's namespaces."""

    transport = "cloud58.lab.podman_nsenter"
    has_pipelining = True
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pid = None

    def _programs(self):
        found = []
        for option in ("podman_executable", "nsenter_executable"):
            name = self.get_option(option)
            path = shutil.which(name)
            if path is None:
                raise AnsibleError(f"podman_nsenter: {option} {name!r} is not on this controller's PATH")
            found.append(path)
        return found

    def _connect(self):
        if self._connected:
            return self
        podman, _nsenter = self._programs()
        container = self.get_option("remote_addr")
        state = "{{.State.Running}} {{.State.Pid}}"
        result = subprocess.run(
            [podman, "inspect", "--type", "container", "--format", state, container],
            capture_output=True,
            check=False,
        )
        running, _sep, pid = to_text(result.stdout).strip().partition(" ")
        if result.returncode != 0 or running != "true" or not pid.isdigit() or pid == "0":
            reason = to_text(result.stderr).strip() or f"state running={running or '?'} pid={pid or '?'}"
            raise AnsibleConnectionFailure(
                f"podman_nsenter: container {container!r} is not running: {reason}"
            )
        self._pid = pid
        display.vvv(f"ENTER container {container} (pid {pid})", host=container)
        self._connected = True
        return self

    def _argv(self, command):
        _podman, nsenter = self._programs()
        return [
            nsenter,
            f"--target={self._pid}",
            *NAMESPACES,
            "--",
            "/usr/bin/env",
            "-i",
            f"PATH={self.get_option('path')}",
            "HOME=/root",
            "LANG=C.UTF-8",
            "/bin/sh",
            "-c",
            command,
        ]

    def _run(self, command, stdin=None, stdout=subprocess.PIPE):
        self._connect()
        display.vvv(f"EXEC {command}", host=self.get_option("remote_addr"))
        process = subprocess.Popen(
            self._argv(to_native(command)),
            stdin=stdin if stdin is not None else subprocess.PIPE,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        return process

    def exec_command(self, cmd, in_data=None, sudoable=False):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        process = self._run(cmd)
        stdout, stderr = process.communicate(to_bytes(in_data) if in_data is not None else b"")
        return process.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound(f"podman_nsenter: file to copy {in_path!r} does not exist")
        quoted = self._shell.quote(out_path)
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as source:
            process = self._run(f"cat > {quoted}", stdin=source)
            _stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise AnsibleError(
                f"podman_nsenter: could not write {out_path} in the container: {to_text(stderr).strip()}"
            )

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        quoted = self._shell.quote(in_path)
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as target:
            process = self._run(f"cat {quoted}", stdout=target)
            _stdout, stderr = process.communicate(b"")
        if process.returncode != 0:
            raise AnsibleError(
                f"podman_nsenter: could not read {in_path} in the container: {to_text(stderr).strip()}"
            )

    def close(self):
        super().close()
        self._connected = False
