"""Resource quantities as exact numbers."""

from __future__ import annotations

from fractions import Fraction

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.kube.quantity import parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("0.5", Fraction(1, 2)),
        ("1", Fraction(1)),
        (2, Fraction(2)),
        (0.25, Fraction(1, 4)),
        ("1Gi", Fraction(2**30)),
        ("1024Mi", Fraction(2**30)),
        ("1k", Fraction(1000)),
        ("1M", Fraction(10**6)),
        ("1e3", Fraction(1000)),
        ("1E", Fraction(10**18)),
        ("100n", Fraction(1, 10**7)),
    ],
    ids=str,
)
def test_parse_quantity_gives_exact_values(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Xi", "m", True, None, "1.2.3"])
def test_parse_quantity_rejects_non_quantities(text):
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)
