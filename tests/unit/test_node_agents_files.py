"""The role node_agents copies a fixed list of the collection's module_utils files to each node
(vars/main.yml, node_agents__module_utils) for its agents to import. A file that a listed file
imports but the list lacks fails only on the node, at the agent's start (cloud58-signals did,
when monitoring/__init__.py began to import monitoring/rules.py): here it fails first."""

from __future__ import annotations

import ast
import posixpath
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PLATFORM = REPO / "collections/ansible_collections/cloud58/platform"
MODULE_UTILS = PLATFORM / "plugins/module_utils"
PREFIX = "ansible_collections.cloud58.platform.plugins.module_utils."


def _listed() -> list[str]:
    variables = yaml.safe_load((PLATFORM / "roles/node_agents/vars/main.yml").read_text())
    return variables["node_agents__module_utils"]


def _imports(rel: str) -> set[str]:
    """The module_utils files ``rel`` imports, relative to module_utils/."""
    package = posixpath.dirname(rel)
    found = set()
    for node in ast.walk(ast.parse((MODULE_UTILS / rel).read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = posixpath.dirname(base)
                module = posixpath.join(base, *(node.module or "").split(".")) if node.module else base
            elif (node.module or "").startswith(PREFIX):
                module = node.module.removeprefix(PREFIX).replace(".", "/")
            else:
                continue
            for candidate in (f"{module}.py", f"{module}/__init__.py"):
                if (MODULE_UTILS / candidate).is_file():
                    found.add(candidate)
    return found


def _missing(listed: list[str]) -> list[str]:
    return sorted(
        f"{imported} (imported by {rel})"
        for rel in listed
        for imported in _imports(rel)
        if imported not in listed
    )


def test_every_module_utils_file_an_agent_imports_is_copied():
    assert _missing(_listed()) == []


def test_a_file_left_out_of_the_list_is_found():
    listed = [rel for rel in _listed() if rel != "monitoring/rules.py"]
    assert _missing(listed) == ["monitoring/rules.py (imported by monitoring/__init__.py)"]
