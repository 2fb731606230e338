"""Every role's defaults/main.yml and meta/argument_specs.yml must agree.

``argument_spec_problems(role_dir)`` is the reusable checker: it returns one readable line
per disagreement, an empty list when the two files agree. ``test_role_defaults_match_argument_specs``
runs it over every role under ``roles/``, so a new role is checked without touching this file.

Rules (for the ``main`` entry point, against ``defaults/main.yml``):
* every default is declared, with a type its value has and the same default value;
* every declared option has a default, unless it is ``required: true`` (then it has none);
* list defaults match the declared ``elements`` type, and a default is one of the ``choices``;
* every default carries the role's prefix (``<role>_``).
Other entry points may declare a subset of the options; those they declare must agree too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[3] / "roles"

# argument_specs type -> the Python types a YAML default of that type loads as.
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "bool": (bool,),
    "int": (int,),
    "float": (float, int),
    "dict": (dict,),
    "list": (list,),
    "raw": (object,),
}


def _type_problem(where: str, value: object, type_name: str) -> str | None:
    if type_name not in _PY_TYPES:
        return f"{where}: type {type_name!r} is not one the checker knows ({', '.join(sorted(_PY_TYPES))})"
    if isinstance(value, str) and "{{" in value:
        return None  # a templated default: its type is only known when Ansible renders it
    # bool is a subclass of int in Python; an int option must not default to true/false.
    if isinstance(value, bool) and type_name in ("int", "float"):
        return f"{where}: default {value!r} has type bool, the spec says {type_name}"
    if not isinstance(value, _PY_TYPES[type_name]):
        return f"{where}: default {value!r} has type {type(value).__name__}, the spec says {type_name}"
    return None


def _option_problems(role: str, entry: str, name: str, spec: dict, defaults: dict) -> list[str]:
    where = f"{role}: {entry}.{name}"
    problems = []
    type_name = spec.get("type", "str")
    if spec.get("required", False):
        if name in defaults:
            problems.append(f"{where}: required in argument_specs but has a default in defaults/main.yml")
        if "default" in spec:
            problems.append(f"{where}: required and has a default in argument_specs")
        return problems
    if name not in defaults:
        return [f"{where}: declared in argument_specs but missing from defaults/main.yml"]
    value = defaults[name]
    if "default" not in spec:
        problems.append(f"{where}: no default in argument_specs, defaults/main.yml has {value!r}")
    elif spec["default"] != value or type(spec["default"]) is not type(value):
        problems.append(f"{where}: argument_specs default {spec['default']!r} != defaults/main.yml {value!r}")
    problem = _type_problem(where, value, type_name)
    if problem:
        problems.append(problem)
    if type_name == "list" and isinstance(value, list) and "elements" in spec:
        for i, item in enumerate(value):
            problem = _type_problem(f"{where}[{i}]", item, spec["elements"])
            if problem:
                problems.append(problem)
    if "choices" in spec and value not in spec["choices"]:
        problems.append(f"{where}: default {value!r} is not one of the choices {spec['choices']!r}")
    return problems


def _load_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValueError(f"{path.parent.name}/{path.name} is not valid YAML: {e.problem}{where}") from e


def argument_spec_problems(role_dir: Path) -> list[str]:
    """Disagreements between a role's defaults/main.yml and its meta/argument_specs.yml."""
    role = role_dir.name
    specs_file = role_dir / "meta" / "argument_specs.yml"
    defaults_file = role_dir / "defaults" / "main.yml"
    if not specs_file.is_file():
        return [f"{role}: has no meta/argument_specs.yml"]
    try:
        entry_points = (_load_yaml(specs_file) or {}).get("argument_specs") or {}
        defaults = (_load_yaml(defaults_file) or {}) if defaults_file.is_file() else {}
    except ValueError as e:
        return [f"{role}: {e}"]
    if "main" not in entry_points:
        return [f"{role}: meta/argument_specs.yml has no 'main' entry point"]

    problems = [
        f"{role}: default {name!r} lacks the role prefix {role + '_'!r}"
        for name in defaults
        if not name.startswith(f"{role}_")
    ]
    for entry, entry_spec in entry_points.items():
        options = (entry_spec or {}).get("options") or {}
        for name, spec in options.items():
            problems += _option_problems(role, entry, name, spec or {}, defaults)
        if entry == "main":
            problems += [
                f"{role}: main.{name}: in defaults/main.yml but not declared in argument_specs"
                for name in defaults
                if name not in options
            ]
    return problems


def _role_dirs() -> list[Path]:
    return sorted(p for p in ROLES_DIR.iterdir() if (p / "tasks").is_dir())


def test_roles_are_found():
    # Guards the parametrization below: an empty role list would check nothing.
    assert "base" in [p.name for p in _role_dirs()]


@pytest.mark.parametrize("role_dir", _role_dirs(), ids=lambda p: p.name)
def test_role_defaults_match_argument_specs(role_dir):
    assert argument_spec_problems(role_dir) == []


# ---- the checker itself, on made-up roles --------------------------------------------


def _make_role(tmp_path: Path, defaults: dict | None, options: dict | None, name: str = "demo") -> Path:
    role_dir = tmp_path / name
    (role_dir / "tasks").mkdir(parents=True)
    if defaults is not None:
        (role_dir / "defaults").mkdir()
        (role_dir / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
    if options is not None:
        (role_dir / "meta").mkdir()
        specs = {"argument_specs": {"main": {"short_description": "demo", "options": options}}}
        (role_dir / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(specs))
    return role_dir


@pytest.mark.parametrize(
    ("defaults", "options", "expected"),
    [
        pytest.param(
            {"demo_port": 80, "demo_names": []},
            {"demo_port": {"type": "int", "default": 80}, "demo_names": {"type": "list", "default": []}},
            [],
            id="agreeing",
        ),
        pytest.param(
            {"demo_port": 80, "demo_extra": "x"},
            {"demo_port": {"type": "int", "default": 80}},
            ["demo: main.demo_extra: in defaults/main.yml but not declared in argument_specs"],
            id="undeclared-default",
        ),
        pytest.param(
            {"demo_port": 80},
            {"demo_port": {"type": "int", "default": 80}, "demo_gone": {"type": "str", "default": "x"}},
            ["demo: main.demo_gone: declared in argument_specs but missing from defaults/main.yml"],
            id="declared-without-default",
        ),
        pytest.param(
            {"demo_port": "80"},
            {"demo_port": {"type": "int", "default": "80"}},
            ["demo: main.demo_port: default '80' has type str, the spec says int"],
            id="type-drift",
        ),
        pytest.param(
            {"demo_port": True},
            {"demo_port": {"type": "int", "default": True}},
            ["demo: main.demo_port: default True has type bool, the spec says int"],
            id="bool-is-not-int",
        ),
        pytest.param(
            {"demo_port": 80},
            {"demo_port": {"type": "int", "default": 8080}},
            ["demo: main.demo_port: argument_specs default 8080 != defaults/main.yml 80"],
            id="default-drift",
        ),
        pytest.param(
            {"demo_port": 80},
            {"demo_port": {"type": "int"}},
            ["demo: main.demo_port: no default in argument_specs, defaults/main.yml has 80"],
            id="spec-without-default",
        ),
        pytest.param(
            {"demo_names": ["a", 2]},
            {"demo_names": {"type": "list", "elements": "str", "default": ["a", 2]}},
            ["demo: main.demo_names[1]: default 2 has type int, the spec says str"],
            id="list-element-type",
        ),
        pytest.param(
            {"demo_mode": "fast"},
            {"demo_mode": {"type": "str", "choices": ["slow"], "default": "fast"}},
            ["demo: main.demo_mode: default 'fast' is not one of the choices ['slow']"],
            id="default-outside-choices",
        ),
        pytest.param(
            {},
            {"demo_token": {"type": "str", "required": True}},
            [],
            id="required-without-default",
        ),
        pytest.param(
            {"demo_token": "x"},
            {"demo_token": {"type": "str", "required": True}},
            ["demo: main.demo_token: required in argument_specs but has a default in defaults/main.yml"],
            id="required-with-default",
        ),
        pytest.param(
            {"port": 80},
            {"port": {"type": "int", "default": 80}},
            ["demo: default 'port' lacks the role prefix 'demo_'"],
            id="missing-prefix",
        ),
        pytest.param(
            {"demo_port": 80},
            None,
            ["demo: has no meta/argument_specs.yml"],
            id="no-argument-specs",
        ),
    ],
)
def test_checker_reports_each_disagreement(tmp_path, defaults, options, expected):
    assert argument_spec_problems(_make_role(tmp_path, defaults, options)) == expected


@pytest.mark.parametrize(
    ("specs_text", "expected"),
    [
        pytest.param(
            "argument_specs:\n  other:\n    options: {}\n",
            ["demo: meta/argument_specs.yml has no 'main' entry point"],
            id="no-main-entry-point",
        ),
        pytest.param(
            "argument_specs:\n  main:\n    short_description: a: b\n",
            [
                "demo: meta/argument_specs.yml is not valid YAML: "
                "mapping values are not allowed here (line 3, column 25)"
            ],
            id="invalid-yaml",
        ),
    ],
)
def test_checker_reports_unusable_argument_specs(tmp_path, specs_text, expected):
    role_dir = _make_role(tmp_path, {"demo_port": 80}, None)
    (role_dir / "meta").mkdir()
    (role_dir / "meta" / "argument_specs.yml").write_text(specs_text)
    assert argument_spec_problems(role_dir) == expected
