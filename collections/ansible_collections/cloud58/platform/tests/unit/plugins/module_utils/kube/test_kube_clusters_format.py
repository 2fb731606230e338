"""The one YAML reader and writer of clusters/."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.kube.clusters_format import (
    dump_yaml,
    load_yaml_documents,
)


@pytest.mark.parametrize(
    ("text", "docs"),
    [
        (
            "a: 1\nb: [x, 2.5, true, null]\nc: {d: '3'}\n",
            [{"a": 1, "b": ["x", 2.5, True, None], "c": {"d": "3"}}],
        ),
        ("when: 2024-01-02\n", [{"when": "2024-01-02"}]),  # timestamps stay strings, as the API reads them
        (
            "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n",
            [{"base": {"x": 1, "y": 2}, "use": {"x": 1, "y": 3}}],
        ),
        ("a: &v [1]\nb: *v\n", [{"a": [1], "b": [1]}]),
        ("---\na: 1\n---\n---\nb: 2\n", [{"a": 1}, {"b": 2}]),
        ("", []),
    ],
    ids=["scalars", "timestamp", "merge-key", "alias", "documents", "empty"],
)
def test_yaml_loading(tmp_path, text, docs):
    path = tmp_path / "f.yaml"
    path.write_text(text)
    assert load_yaml_documents(str(path)) == docs


def test_yaml_is_deterministic_with_literal_blocks():
    text = dump_yaml({"b": 1, "a": {"z": "x\ny\n", "c": [2, 1]}}, "first\nsecond")
    assert text == "# first\n# second\na:\n  c:\n  - 2\n  - 1\n  z: |\n    x\n    y\nb: 1\n"
    assert dump_yaml({"a": {"z": "x\ny\n", "c": [2, 1]}, "b": 1}, "first\nsecond") == text
