"""Every program the project runs on the controller is registered, and comes from where it says.

A machine where somebody installed a package by hand passes a test that merely runs the
program, and a fresh machine then fails (catatonit was only a Recommends of podman, and
setup installs with --no-install-recommends). These tests read the Debian package database
instead: the file the program resolves to must belong to the package the registry names,
and that package must be listed in scripts/setup/apt-packages.txt, be pulled in by a listed
package's Depends/Pre-Depends (never its Recommends), or be part of every Debian system.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from cloud58_lab import programs

REPO = Path(__file__).resolve().parents[2]
APT_LIST = REPO / "scripts/setup/apt-packages.txt"
# Code that runs programs on the controller (molecule verifiers run in podman containers
# through testinfra, except for the playbooks they start).
SCANNED = ("lab", "tests", "benchmarks", "scripts", "molecule", "images")
CONNECTION_PLUGINS = REPO / "collections/ansible_collections/cloud58/platform/plugins/connection"


def _listed() -> set[str]:
    names = set()
    for line in APT_LIST.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            names.add(words[0])
    return names


@cache
def _dpkg() -> dict[str, dict[str, str]]:
    """Every installed package: its Essential, Priority, Depends, Pre-Depends and Provides fields."""
    fmt = "${Package}\\t${Status}\\t${Essential}\\t${Priority}\\t${Depends}\\t${Pre-Depends}\\t${Provides}\\n"
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True, check=True).stdout
    packages = {}
    for line in out.splitlines():
        name, status, essential, priority, depends, pre, provides = line.split("\t")
        if status == "install ok installed":
            packages[name] = {
                "essential": essential,
                "priority": priority,
                "depends": ", ".join(x for x in (pre, depends) if x),
                "provides": provides,
            }
    return packages


def _names(group: str) -> list[str]:
    """``a (>= 1) | b:any`` -> ``["a", "b"]``."""
    return [re.sub(r"\(.*?\)|:\w+", "", alt).strip() for alt in group.split("|") if alt.strip()]


@cache
def _providers() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, fields in _dpkg().items():
        for virtual in _names(fields["provides"].replace(",", "|")):
            found.setdefault(virtual, set()).add(name)
    return found


def depends_closure(listed: set[str]) -> set[str]:
    """The packages a fresh `apt-get install --no-install-recommends <listed>` brings.

    For an alternative (``crun | runc``) apt takes one already requested, else the first;
    a virtual package is satisfied by its installed providers. Recommends are never followed.
    """
    installed = _dpkg()
    seen: set[str] = set()
    todo = list(listed)
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        for group in installed.get(pkg, {}).get("depends", "").split(","):
            alternatives = _names(group)
            if not alternatives:
                continue
            chosen = next((a for a in alternatives if a in listed or a in seen), alternatives[0])
            if chosen in installed:
                todo.append(chosen)
            else:
                todo.extend(_providers().get(chosen, ()))
    return seen


def base_system() -> set[str]:
    """Packages every Debian system has (debootstrap --variant=minbase installs these)."""
    return {n for n, f in _dpkg().items() if f["essential"] == "yes" or f["priority"] == "required"}


def owner(path: str) -> str:
    """The package owning ``path`` (the link a package ships, else its target); merged-/usr
    paths are tried in both spellings."""
    real = os.path.realpath(path)
    candidates = []
    for spelling in dict.fromkeys((path, real)):
        candidates.append(spelling)
        if spelling.startswith(("/usr/bin/", "/usr/sbin/", "/usr/lib/")):
            candidates.append(spelling.replace("/usr", "", 1))
    for candidate in candidates:
        proc = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout.split(":", 1)[0].split(",")[0].strip()
    return f"<no package owns {real}>"


APT_PROGRAMS = sorted(n for n, p in programs.PROGRAMS.items() if p.source == programs.APT)
VENV_PROGRAMS = sorted(n for n, p in programs.PROGRAMS.items() if p.source == programs.VENV)


@pytest.mark.parametrize("name", APT_PROGRAMS)
def test_apt_program_belongs_to_the_package_the_registry_names(name):
    assert owner(programs.path(name)) == programs.PROGRAMS[name].package


@pytest.mark.parametrize("name", APT_PROGRAMS)
def test_apt_program_comes_from_a_listed_package_or_its_depends(name):
    package = programs.PROGRAMS[name].package
    provided = depends_closure(_listed()) | base_system()
    assert package in provided, (
        f"{name} comes from {package}, which neither scripts/setup/apt-packages.txt nor the Depends "
        "of a listed package brings, and which is not part of every Debian system: list it"
    )


@pytest.mark.parametrize(
    ("package", "listed_without"),
    [
        pytest.param("catatonit", "catatonit", id="catatonit-is-only-recommended-by-podman"),
        pytest.param("bird2", "bird2", id="bird2-comes-from-nothing-else"),
    ],
)
def test_a_package_only_recommended_is_not_counted(package, listed_without):
    """The check fails for the packages it exists for: without its own line, catatonit is not
    brought by podman (a Recommends), so a fresh setup would lack it."""
    assert package in depends_closure(_listed())
    assert package not in depends_closure(_listed() - {listed_without})


def test_podman_depends_are_followed():
    """conmon is a Depends of podman: listed podman brings it without a line of its own."""
    assert "conmon" not in _listed()
    assert "conmon" in depends_closure({"podman"})


@pytest.mark.parametrize("name", VENV_PROGRAMS)
def test_venv_program_is_installed_by_a_pinned_distribution(name):
    distribution = programs.PROGRAMS[name].package
    pins = {
        line.split("==")[0].lower()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert distribution.lower() in pins
    installed = {
        Path(f).name
        for f in importlib.metadata.distribution(distribution).files
        if Path(f).parent.name == "bin"
    }
    assert name in installed
    assert Path(programs.path(name)).parent == Path(programs.path("python3")).parent


@pytest.mark.parametrize("build", sorted(programs.UPSTREAM_BUILDS))
def test_upstream_programs_are_the_ones_setup_builds(build):
    script = (REPO / f"scripts/setup/{build}.sh").read_text()
    built = re.search(r"^programs=\(([^)]*)\)", script, re.M).group(1).split()
    assert f"{programs.UPSTREAM_BUILDS[build]}:-" in script
    registered = sorted(
        n for n, p in programs.PROGRAMS.items() if p.source == programs.UPSTREAM and p.package == build
    )
    assert registered == sorted(built)


def test_every_upstream_program_names_a_known_build():
    builds = {p.package for p in programs.PROGRAMS.values() if p.source == programs.UPSTREAM}
    assert builds == set(programs.UPSTREAM_BUILDS)


def test_an_unregistered_program_is_refused_by_name():
    unregistered = "telnet"
    with pytest.raises(programs.ProgramMissing, match=r"'telnet' is not in the program registry"):
        programs.path(unregistered)


def test_a_missing_program_names_its_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(programs, "_SEARCH_EXTRA", ())
    with pytest.raises(programs.ProgramMissing) as e:
        programs.require("catatonit", "vtysh")
    assert str(e.value).splitlines() == [
        "catatonit is not installed: it comes from the Debian package catatonit; run 'make setup-apt' "
        "(the init of the pause image `podman kube play` builds)",
        "vtysh is not installed: it comes from the Debian package frr; run 'make setup-apt' "
        "(configures and queries the lab's FRR routers)",
    ]


# ---- the code runs no program the registry lacks -------------------------------------------------
def _sources() -> list[Path]:
    files = [p for root in SCANNED for p in (REPO / root).rglob("*.py")]
    return sorted(files + list(CONNECTION_PLUGINS.glob("*.py")))


def _executable(word: str) -> bool:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/lib/frr"])
    return bool(re.fullmatch(r"[a-z][a-z0-9._+-]*", word)) and shutil.which(word, path=search) is not None


# Functions that start a program on the controller from an argv list, and names argv lists
# are kept in before they are run.
RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "_run", "_spawn", "_podman", "resolve"}
ARGV_NAMES = re.compile(r"^(args|argv|cmd|command|[a-z_]*_(argv|cmd))$")


def _command_lists(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], (ast.List, ast.Tuple)):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in RUNNERS:
                yield node.args[0]
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, (ast.List, ast.Tuple))
            and any(isinstance(t, ast.Name) and ARGV_NAMES.match(t.id) for t in node.targets)
        ):
            yield node.value


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _heads(tree: ast.AST):
    """``(line, word, named)`` for string literals in command position: the first item of an
    argv list given to a runner (or kept in an ``argv``/``cmd`` variable), the item after
    ``ip netns exec <ns>``, and (``named``) the names given to the registry's functions, which
    are programs wherever they stand."""
    for node in _command_lists(tree):
        words = [
            i.value if isinstance(i, ast.Constant) and isinstance(i.value, str) else None for i in node.elts
        ]
        if words and words[0]:
            yield node.lineno, words[0], False
        if words[:3] == ["ip", "netns", "exec"] and len(words) > 4 and words[4]:
            yield node.lineno, words[4], False
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "programs"
        ):
            for arg in node.args[:1] if node.func.attr != "require" else node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield node.lineno, arg.value, True


def test_every_program_the_code_names_is_registered():
    unregistered = []
    for path in _sources():
        for line, word, named in _heads(ast.parse(path.read_text(), str(path))):
            if word not in programs.PROGRAMS and (named or _executable(word)):
                unregistered.append(f"{path.relative_to(REPO)}:{line}: {word}")
    assert unregistered == []


def test_the_scan_sees_a_program_missing_from_the_registry(tmp_path):
    """The scan above can fail: an unregistered program in command position is found."""
    code = (
        "import subprocess\n"
        'subprocess.run(["tcpdump", "-i", "lo"])\n'
        'subprocess.run(["ip", "netns", "exec", ns, "tcpdump"])\n'
        'programs.argv("podman", "ps")\n'
        'rows = [("cluster", "status")]\n'
        'argv = ["tcpdump", "-n"]\n'
    )
    heads = sorted(_heads(ast.parse(code)))
    assert heads == [
        (2, "tcpdump", False),
        (3, "ip", False),
        (3, "tcpdump", False),
        (4, "podman", True),
        (6, "tcpdump", False),
    ]
    assert [w for _, w, _ in heads if w not in programs.PROGRAMS] == ["tcpdump"] * 3
