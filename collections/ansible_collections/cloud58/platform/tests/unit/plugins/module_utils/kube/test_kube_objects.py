"""Object identity and the desired-state hash."""

from __future__ import annotations

import re

from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import (
    HASH_ANNOTATION,
    ObjKey,
    desired_hash,
    object_key,
    with_hash,
)


def test_hash_ignores_its_own_annotation_and_key_order():
    plain = {"b": 1, "a": {"y": 2, "x": 1}, "metadata": {"name": "n"}}
    reordered = {"metadata": {"name": "n"}, "a": {"x": 1, "y": 2}, "b": 1}
    assert desired_hash(plain) == desired_hash(reordered) == desired_hash(with_hash(plain))
    assert with_hash(plain)["metadata"]["annotations"] == {HASH_ANNOTATION: desired_hash(plain)}
    assert "annotations" not in plain["metadata"]
    assert desired_hash({**plain, "b": 2}) != desired_hash(plain)


def test_object_key_and_str():
    key = object_key(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}}
    )
    assert key == ObjKey("apps", "Deployment", "n", "d")
    assert str(key) == "Deployment/n/d"
    assert re.fullmatch(r"Namespace/x", str(ObjKey("", "Namespace", "", "x")))
