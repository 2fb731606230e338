"""Calico selectors: written quoted, parsed strictly, evaluated like calico-node does."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import selector

LABELS = {"cloud58.io/rack": "lab1-r1", "cloud58.io/function": "ingress"}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("cloud58.io/rack", "lab1-r1", "cloud58.io/rack == 'lab1-r1'"),
        ("rack", "it's", 'rack == "it\'s"'),
    ],
    ids=["single-quotes", "double-quotes-when-value-has-apostrophe"],
)
def test_equals_quotes_the_value(key, value, expected):
    assert selector.equals(key, value) == expected


def test_a_value_with_both_quotes_cannot_be_expressed():
    with pytest.raises(selector.SelectorError, match="both quote characters"):
        selector.quote("a'b\"c")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cloud58.io/rack == 'lab1-r1'", True),
        ("cloud58.io/rack == 'lab1-r2'", False),
        ("cloud58.io/rack != 'lab1-r2'", True),
        ("has(cloud58.io/function)", True),
        ("!has(cloud58.io/function)", False),
        ("cloud58.io/rack in {'lab1-r2', 'lab1-r1'}", True),
        ("cloud58.io/rack not in {'lab1-r1'}", False),
        ("cloud58.io/rack == 'lab1-r1' && cloud58.io/function == 'online'", False),
        ("cloud58.io/rack == 'lab1-r2' || (has(cloud58.io/function) && all())", True),
        ("", True),
    ],
)
def test_matches(text, expected):
    assert selector.matches(text, LABELS) is expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("cloud58.io/rack == lab1-r1", "must be a quoted string"),
        ("cloud58.io/rack == 'lab1-r1' &&", "expected word"),
        ("cloud58.io/rack = 'lab1-r1'", "unexpected character"),
        ("(cloud58.io/rack == 'a'", r"expected \)"),
        ("rack == 'a' rack == 'b'", "after a complete expression"),
    ],
    ids=["unquoted-value", "dangling-and", "single-equals", "open-paren", "two-expressions"],
)
def test_parse_rejects_what_calico_rejects(text, complaint):
    with pytest.raises(selector.SelectorError, match=complaint):
        selector.parse(text)
