"""The import contracts of .importlinter (run by `make lint`) hold today, and each one breaks
when a copy of the plugins gets the import it forbids."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[7]
PLUGINS = REPO / "collections/ansible_collections/cloud58/platform/plugins"
CONFIG = REPO / ".importlinter"

ON_TOP = "plugins sit on plugin_utils and module_utils and never import each other"
LAYERS = "module_utils packages import only the layers below them"
PKI = "pki (x509) imports nothing of the collection"
KUBE = "kube (the Kubernetes vocabulary) imports nothing of the collection"
RENDER = "render imports nothing of the reconcile engine (gitops); they share kube only"
TOPOLOGY = "topology imports nothing of the collection but the BGP option rules (bgp.options)"
ENGINE = "the reconcile engine (gitops) imports no planner, renderer or host configuration"
LAB = "nothing in the collection imports the lab (cloud58_lab)"
LVS = "lvs (the LVS director data plane) imports nothing of the collection"
MONITORING = "monitoring (the Prometheus configuration) imports nothing of the collection"
GATEWAY = "gateway (the ingress HAProxy configuration) imports nothing of the collection"
DISCOVERY = "discovery (Kubernetes endpoints into Consul's catalog) imports nothing of the collection"
CONSUL = "consul (the Consul servers' configuration) imports nothing of the collection"
ALL = {ON_TOP, LAYERS, PKI, KUBE, RENDER, TOPOLOGY, ENGINE, LAB, LVS, MONITORING, GATEWAY, DISCOVERY, CONSUL}


def _lint(tmp_path, edit=None):
    """lint-imports over a copy of the plugins, with one import line appended to one file."""
    copy = tmp_path / "ansible_collections/cloud58/platform/plugins"
    shutil.copytree(PLUGINS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    if edit:
        path, line = edit
        with open(copy / path, "a", encoding="utf-8") as handle:
            handle.write(f"\n{line}  # noqa\n")
    lint = shutil.which("lint-imports")
    assert lint, "lint-imports is not on PATH: install requirements.txt (import-linter)"
    env = dict(os.environ, PYTHONPATH=str(tmp_path), COLUMNS="400")
    result = subprocess.run(
        [lint, "--no-cache", "--no-logo", str(CONFIG)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [line.strip() for line in result.stdout.splitlines()]
    kept = {name for name in ALL if any(line.startswith(name + " KEPT") for line in lines)}
    broken = {name for name in ALL if any(line.startswith(name + " BROKEN") for line in lines)}
    return result.returncode, kept, broken, result.stdout + result.stderr


def test_contracts_hold_for_the_collection(tmp_path):
    code, kept, broken, output = _lint(tmp_path)
    assert (code, kept, broken) == (0, ALL, set()), output


@pytest.mark.parametrize(
    ("path", "line", "expected"),
    [
        pytest.param(
            "module_utils/node/sysctl.py",
            "from ansible_collections.cloud58.platform.plugins.modules import sysctl_profile",
            {ON_TOP},
            id="module_utils-imports-a-module",
        ),
        pytest.param(
            "filter/bgp.py",
            "from ansible_collections.cloud58.platform.plugins.modules import topology_plan",
            {ON_TOP},
            id="filter-imports-a-module",
        ),
        pytest.param(
            "module_utils/topology/sources.py",
            "from ansible_collections.cloud58.platform.plugins.plugin_utils import origin",
            {ON_TOP},
            id="module_utils-imports-plugin_utils",
        ),
        pytest.param(
            "vars/host_group_vars.py",
            "from ansible_collections.cloud58.platform.plugins.filter import bgp",
            {ON_TOP},
            id="vars-plugin-imports-a-filter",
        ),
        pytest.param(
            "module_utils/controlplane/settings.py",
            "from ..topology import plan",
            {LAYERS},
            id="sibling-renderers",
        ),
        pytest.param(
            "module_utils/bgp/fabric.py", "from ..render import errors", {LAYERS}, id="bgp-imports-up"
        ),
        pytest.param(
            "module_utils/pki/x509.py", "from ..node import errors", {LAYERS, PKI}, id="pki-imports-node"
        ),
        pytest.param(
            "module_utils/kube/objects.py", "from ..pki import x509", {LAYERS, KUBE}, id="kube-imports-pki"
        ),
        pytest.param(
            "module_utils/topology/plan.py", "from ..kube import objects", {TOPOLOGY}, id="topology-kube"
        ),
        pytest.param(
            "module_utils/render/tree.py", "from ..gitops import engine", {LAYERS, RENDER}, id="render-gitops"
        ),
        pytest.param(
            "module_utils/gitops/runner.py", "from ..render import tree", {LAYERS, ENGINE}, id="gitops-render"
        ),
        pytest.param("module_utils/gitops/engine.py", "from ..bgp import fabric", {ENGINE}, id="gitops-bgp"),
        pytest.param("module_utils/render/tree.py", "import cloud58_lab", {LAB}, id="render-imports-the-lab"),
        pytest.param(
            "module_utils/lvs/fullnat.py",
            "from ..topology import plan",
            {LAYERS, LVS},
            id="lvs-imports-topology",
        ),
        pytest.param(
            "module_utils/lvs/runner.py", "from ..kube import objects", {LVS}, id="lvs-imports-kube"
        ),
        pytest.param(
            "module_utils/topology/plan.py",
            "from ..lvs import fullnat",
            {LAYERS, TOPOLOGY},
            id="topology-imports-lvs",
        ),
        pytest.param(
            "module_utils/monitoring/scrape.py",
            "from ..topology import plan",
            {LAYERS, MONITORING},
            id="monitoring-imports-topology",
        ),
        pytest.param(
            "module_utils/monitoring/scrape.py",
            "from ..kube import objects",
            {MONITORING},
            id="monitoring-imports-kube",
        ),
        pytest.param(
            "module_utils/gateway/haproxy.py",
            "from ..topology import plan",
            {LAYERS, GATEWAY},
            id="gateway-imports-topology",
        ),
        pytest.param(
            "module_utils/gateway/haproxy.py",
            "from ..kube import objects",
            {GATEWAY},
            id="gateway-imports-kube",
        ),
        pytest.param(
            "module_utils/discovery/catalog.py",
            "from ..gateway import haproxy",
            {LAYERS, DISCOVERY},
            id="discovery-imports-gateway",
        ),
        pytest.param(
            "module_utils/discovery/catalog.py",
            "from ..kube import objects",
            {DISCOVERY},
            id="discovery-imports-kube",
        ),
        pytest.param(
            "module_utils/gateway/haproxy.py",
            "from ..discovery import catalog",
            {LAYERS, GATEWAY},
            id="gateway-imports-discovery",
        ),
        pytest.param(
            "module_utils/node/sysctl.py",
            "from ..gateway import haproxy",
            {LAYERS},
            id="node-imports-gateway",
        ),
        pytest.param(
            "module_utils/consul/servers.py",
            "from ..gateway import haproxy",
            {LAYERS, CONSUL},
            id="consul-imports-gateway",
        ),
        pytest.param(
            "module_utils/consul/servers.py",
            "from ..pki import x509",
            {CONSUL},
            id="consul-imports-pki",
        ),
    ],
)
def test_each_contract_breaks_on_the_import_it_forbids(tmp_path, path, line, expected):
    code, kept, broken, output = _lint(tmp_path, (path, line))
    assert (code, broken, kept) == (1, expected, ALL - expected), output
