"""Desired-versus-live comparison: what counts as drift and what does not."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.compare import (
    differences,
    is_zero,
    object_differences,
)


@pytest.mark.parametrize(
    ("value", "zero"),
    [
        (None, True),
        (False, True),
        (0, True),
        ("", True),
        ([], True),
        ({}, True),
        (True, False),
        (1, False),
        ("0", False),
    ],
)
def test_is_zero(value, zero):
    assert is_zero(value) is zero


CASES = [
    pytest.param({"a": 1}, {"a": 1, "b": 2}, [], id="extra-live-fields-are-defaults"),
    pytest.param({"a": 1}, {"a": 2}, ["a"], id="scalar-changed"),
    pytest.param({"a": {"b": "x"}}, {"a": {"b": "y"}}, ["a.b"], id="nested-path"),
    pytest.param({"a": 1}, {}, ["a"], id="missing-non-zero"),
    pytest.param({"a": False, "b": 0, "c": "", "d": [], "e": {}}, {}, [], id="missing-zero-values-omitted"),
    pytest.param({"a": True}, {"a": 1}, ["a"], id="bool-is-not-int"),
    pytest.param({"a": 1}, {"a": "1"}, ["a"], id="int-is-not-string-outside-quantities"),
    pytest.param({"a": 1}, {"a": 1.0}, [], id="int-equals-float"),
    pytest.param(
        {"resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": 2}}},
        {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2"}}},
        [],
        id="quantities-compare-by-value",
    ),
    pytest.param(
        {"resources": {"limits": {"cpu": "1"}}},
        {"resources": {"limits": {"cpu": "1500m"}}},
        ["resources.limits.cpu"],
        id="quantity-changed",
    ),
    pytest.param(
        {"env": [{"name": "X", "value": "0.5"}]},
        {"env": [{"name": "X", "value": "500m"}]},
        ["env[X].value"],
        id="env-values-are-not-quantities",
    ),
    pytest.param({"hard": {"pods": "10"}}, {"hard": {"pods": "10"}}, [], id="quota-hard"),
    pytest.param(
        {"target": {"averageValue": "0.5"}}, {"target": {"averageValue": "500m"}}, [], id="hpa-average-value"
    ),
    pytest.param(
        {"containers": [{"name": "a", "image": "x:1"}]},
        {
            "containers": [
                {"name": "sidecar", "image": "s"},
                {"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent"},
            ]
        },
        [],
        id="keyed-list-ignores-items-of-other-managers",
    ),
    pytest.param(
        {"containers": [{"name": "a", "image": "x:1"}]},
        {"containers": [{"name": "a", "image": "x:2"}]},
        ["containers[a].image"],
        id="keyed-list-item-changed",
    ),
    pytest.param(
        {"containers": [{"name": "a"}, {"name": "b"}]},
        {"containers": [{"name": "a"}]},
        ["containers[b]"],
        id="keyed-list-item-removed-by-hand",
    ),
    pytest.param(
        {"ports": [{"port": 80, "targetPort": 8080}]},
        {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]},
        [],
        id="port-key-defaults-protocol",
    ),
    pytest.param({"args": ["a", "b"]}, {"args": ["a", "b"]}, [], id="scalar-list-equal"),
    pytest.param({"args": ["a", "b"]}, {"args": ["a"]}, ["args"], id="scalar-list-length"),
    pytest.param({"args": ["a", "b"]}, {"args": ["b", "a"]}, ["args[0]", "args[1]"], id="scalar-list-order"),
    pytest.param({"args": []}, {}, [], id="empty-list-omitted"),
    pytest.param({"a": {"b": 1}}, {"a": "x"}, ["a"], id="type-changed-dict"),
    pytest.param({"a": [1]}, {"a": "x"}, ["a"], id="type-changed-list"),
]


@pytest.mark.parametrize(("desired", "live", "expected"), CASES)
def test_differences(desired, live, expected):
    assert differences(desired, live) == expected


def test_secret_string_data_compares_with_encoded_data():
    desired = {"kind": "Secret", "stringData": {"k": "v"}}
    assert object_differences(desired, {"kind": "Secret", "data": {"k": "dg=="}}) == []
    assert object_differences(desired, {"kind": "Secret", "data": {"k": "dw=="}}) == ["data.k"]
