# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The runners of the modules: parameters in, a result dict out (no AnsibleModule here).

* ``run_static_pods`` runs on a host: it writes the host's static pod manifests, the
  kubeconfigs and the audit policy its components need, each only when its content
  differs, and reports exactly which files changed (with before/after for diff mode).
  ``state=query`` reports the versions the existing manifests run.
* ``run_cluster_pki`` runs on the controller: the PKI plan, then ``pki_store.ensure_pki``.
* ``run_preflight`` runs on the controller: preflight.preflight.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time

from .configs import audit_policy
from .errors import ControlPlaneError
from .manifests import (
    COMPONENT_CONFIGS,
    MANIFEST_FILES,
    component_pki_files,
    host_kubeconfigs,
    host_manifests,
    selected_components,
)
from .pki_plan import pki_plan
from .preflight import preflight
from .settings import image_version, settings_from
from .yamlout import dump

_IMAGE_LINE = re.compile(r'^\s*(?:-\s+)?image:\s*"?([^"\s]+)"?\s*$', re.MULTILINE)


def pki_digest(pki_dir: str, files) -> str:
    """sha256 over the named files (path and content); a missing file counts as missing.

    Cut to 32 hex digits (128 bits, plenty to notice a change): podman's ``kube play``
    refuses annotation values longer than 63 characters."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0")
        try:
            with open(os.path.join(pki_dir, rel), "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        except FileNotFoundError:
            h.update(b"missing")
        h.update(b"\0")
    return h.hexdigest()[:32]


def running_versions(config_dir: str) -> dict:
    """``{component: image tag}`` of the control plane manifests present on this host."""
    out = {}
    for component, name in MANIFEST_FILES.items():
        path = os.path.join(config_dir, "manifests", name)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        match = _IMAGE_LINE.search(text)
        if match:
            out[component] = image_version(match.group(1))
    return out


def host_files(cluster, host, settings, components=None) -> dict:
    """``{path: text}`` of every file static_pods manages on ``host``."""
    cfg = settings["config_dir"]
    wanted = selected_components(cluster, host, components)
    digests = {c: pki_digest(f"{cfg}/pki", component_pki_files(c)) for c in wanted}
    files = {
        f"{cfg}/manifests/{name}": dump(pod)
        for name, pod in host_manifests(cluster, host, settings, wanted, digests).items()
    }
    configs = [name for c in wanted for name in COMPONENT_CONFIGS.get(c, ())]
    if configs:
        kubeconfigs = host_kubeconfigs(cluster, host, settings)
        for name in configs:
            data = audit_policy() if name == "audit-policy.yaml" else kubeconfigs[name]
            files[f"{cfg}/{name}"] = dump(data)
    return files


def _read(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".cloud58-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_static_pods(params: dict, check_mode: bool = False, diff_mode: bool = False) -> dict:
    cluster, host = params["cluster"], params["host"]
    settings = settings_from(params.get("settings"), f"host {host!r}")
    cfg = settings["config_dir"]
    running = running_versions(cfg)
    if params.get("state", "present") == "query":
        return {"changed": False, "running": running, "files": [], "restart": [], "written_at": time.time()}
    if not selected_components(cluster, host):
        raise ControlPlaneError(
            f"host {host!r}", [f"runs no control plane component of cluster {cluster['name']!r}"]
        )
    files, diffs, changed = [], [], False
    for path, text in sorted(host_files(cluster, host, settings, params.get("components")).items()):
        before = _read(path)
        mode_ok = before is None or (os.stat(path).st_mode & 0o777) == 0o600
        file_changed = before != text or not mode_ok
        if file_changed and not check_mode:
            _write(path, text)
        files.append({"path": path, "changed": file_changed})
        changed = changed or file_changed
        if diff_mode and before != text:
            diffs.append({"before": before or "", "after": text, "before_header": path, "after_header": path})
    restart = sorted(
        component
        for component, name in MANIFEST_FILES.items()
        if any(f["changed"] and f["path"] == f"{cfg}/manifests/{name}" for f in files)
    )
    # The kubelet restarts these pods; a health check must see processes younger than this.
    result = {
        "changed": changed,
        "files": files,
        "running": running,
        "restart": restart,
        "written_at": time.time(),
    }
    if diff_mode:
        result["diff"] = diffs
    return result


def run_cluster_pki(params: dict, check_mode: bool = False) -> dict:
    from .pki_store import ensure_pki

    cluster = params["cluster"]
    settings = settings_from(params.get("settings"), f"cluster {cluster['name']!r}")
    plan = pki_plan(cluster, settings)
    directory = os.path.expanduser(params["pki_dir"])
    result = ensure_pki(
        directory,
        plan,
        context=cluster["context"],
        server=settings["admin_server"] or cluster["api"]["server"],
        key_type=params.get("key_type", "ecdsa-p256"),
        ca_days=params.get("ca_days", 3650),
        cert_days=params.get("cert_days", 365),
        renew_before_days=params.get("renew_before_days", 0),
        check_mode=check_mode,
    )
    result["pki_dir"] = directory
    result["host_files"] = plan["host_files"]
    return result


def run_preflight(params: dict) -> dict:
    out = preflight(
        params["plan"],
        params["cluster"],
        params.get("settings"),
        params.get("running") or {},
        params.get("kubelets") or {},
    )
    return {"changed": False, **out}
