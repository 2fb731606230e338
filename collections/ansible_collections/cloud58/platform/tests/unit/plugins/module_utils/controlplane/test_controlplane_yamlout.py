"""The YAML writer of the static_pods module: PyYAML reads back exactly what was written."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.yamlout import dump, scalar

TRICKY = [
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "n",
    "true",
    "null",
    "~",
    "",
    " ",
    "a b",
    "x: y",
    "a #b",
    "end:",
    "1:20",
    "2001-12-14",
    "0o17",
    "0x1f",
    "1_000",
    "-1",
    "+1",
    ".5",
    ".inf",
    "-.inf",
    ".NaN",
    "1e3",
    "--flag=https://a:2379,https://b:2379",
    "/events#https://a:2383;https://b:2383",
    "*alias",
    "&anchor",
    "!tag",
    "%x",
    "@x",
    "`x`",
    "'q'",
    '"q"',
    "[a]",
    "{a}",
    "a,b",
    "line\nbreak",
    "tab\there",
    "é",
    "-",
    "--",
    "- x",
    "? x",
    "|",
    ">",
    "198.18.0.11",
    "250m",
    "system:masters",
    "kube-system",
]


@pytest.mark.parametrize("text", TRICKY)
def test_strings_read_back_as_the_same_string(text):
    assert yaml.safe_load(dump({"k": text, "l": [text]})) == {"k": text, "l": [text]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kube-apiserver", "kube-apiserver"),
        ("--secure-port=6443", "--secure-port=6443"),
        ("/etc/kubernetes/pki", "/etc/kubernetes/pki"),
        ("yes", '"yes"'),
        ("198.18.0.11", '"198.18.0.11"'),
        (True, "true"),
        (None, "null"),
        (6443, "6443"),
        (0.55, "0.55"),
        (1e-07, "1e-07"),
    ],
)
def test_scalars(value, expected):
    assert scalar(value) == expected


def test_nested_layout_is_block_style_with_sorted_keys():
    obj = {"b": [{"y": 1, "x": [1, {"z": "on"}]}, [1, [2]], [], {}], "a": {"c": {}}}
    assert dump(obj) == ('a:\n  c: {}\nb:\n- x:\n  - 1\n  - z: "on"\n  "y": 1\n- - 1\n  - - 2\n- []\n- {}\n')
    assert yaml.safe_load(dump(obj)) == obj


@pytest.mark.parametrize("value", [{1: "a"}, {"a": object()}, {"a": float("nan")}])
def test_unwritable_values_raise(value):
    with pytest.raises((TypeError, ValueError)):
        dump(value)


def test_empty_and_scalar_documents():
    assert dump({}) == "{}\n"
    assert dump([]) == "[]\n"
    assert dump("x") == "x\n"
