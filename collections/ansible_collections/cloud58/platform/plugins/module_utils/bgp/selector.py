# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Calico label selectors: build them correctly quoted, and evaluate them.

Calico selectors (``nodeSelector`` of BGPPeer and IPPool) are expressions such as
``rack == 'bj1-r01' && has(function)``. A value must be a quoted string literal: an
unquoted ``rack == r01`` is a parse error in calico-node and the peering silently never
happens. :func:`equals` and :func:`all_of` are the only way this package writes selectors;
:func:`parse` is a strict parser of the subset Calico documents (``==``, ``!=``, ``in``,
``not in``, ``has()``, ``!has()``, ``all()``, ``&&``, ``||``, ``!``, parentheses) that the
calico-node emulation uses to decide which nodes a BGPPeer or IPPool selects, and that
the unit tests use to prove every rendered selector parses.
"""

from __future__ import annotations

import re

_KEY_RE = re.compile(
    r"^([a-z0-9A-Z]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"
)
_TOKEN_RE = re.compile(
    r"\s*(?:(?P<op>==|!=|&&|\|\||[(){},!])|(?P<str>'[^']*'|\"[^\"]*\")|(?P<word>[A-Za-z0-9_./-]+))"
)


class SelectorError(ValueError):
    """A selector that Calico would not accept."""


def quote(value: str) -> str:
    """``value`` as a Calico string literal (single quotes unless the value holds one)."""
    value = str(value)
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise SelectorError(f"value {value!r} holds both quote characters; Calico cannot express it")


def _check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(f"{key!r} is not a valid label key")
    return key


def equals(key: str, value: str) -> str:
    """``key == 'value'``."""
    return f"{_check_key(key)} == {quote(value)}"


def all_of(*terms: str) -> str:
    """Terms joined with ``&&``; each term is parenthesised when it holds ``||``."""
    if not terms:
        return "all()"
    return " && ".join(f"({t})" if "||" in t else t for t in terms)


# ---- parsing and evaluation -------------------------------------------------------------


def _tokens(text: str) -> list:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise SelectorError(f"selector {text!r}: unexpected character at {pos}: {text[pos]!r}")
        pos = match.end()
        if match.group("op"):
            tokens.append(("op", match.group("op")))
        elif match.group("str") is not None:
            tokens.append(("str", match.group("str")[1:-1]))
        else:
            tokens.append(("word", match.group("word")))
    return tokens


class _Parser:
    """Recursive descent: or := and ('||' and)*; and := unary ('&&' unary)*; unary := '!' unary | atom."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def fail(self, why: str):
        raise SelectorError(f"selector {self.text!r}: {why}")

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self, kind=None, value=None):
        token = self.peek()
        if token[0] is None or (kind and token[0] != kind) or (value and token[1] != value):
            self.fail(f"expected {value or kind} at token {self.pos}, found {token[1]!r}")
        self.pos += 1
        return token

    def parse(self):
        if not self.tokens:
            self.fail("empty selector (use all())")
        node = self.parse_or()
        if self.pos != len(self.tokens):
            self.fail(f"unexpected {self.peek()[1]!r} after a complete expression")
        return node

    def parse_or(self):
        node = self.parse_and()
        while self.peek() == ("op", "||"):
            self.take()
            node = ("or", node, self.parse_and())
        return node

    def parse_and(self):
        node = self.parse_unary()
        while self.peek() == ("op", "&&"):
            self.take()
            node = ("and", node, self.parse_unary())
        return node

    def parse_unary(self):
        if self.peek() == ("op", "!"):
            self.take()
            return ("not", self.parse_unary())
        if self.peek() == ("op", "("):
            self.take()
            node = self.parse_or()
            self.take("op", ")")
            return node
        return self.parse_atom()

    def parse_atom(self):
        kind, word = self.take("word")
        if word in ("has", "all") and self.peek() == ("op", "("):
            self.take()
            if word == "all":
                self.take("op", ")")
                return ("all",)
            key = self.take("word")[1]
            self.take("op", ")")
            return ("has", _check_key(key))
        key = _check_key(word)
        kind, op = self.peek()
        if (kind, op) in (("op", "=="), ("op", "!=")):
            self.take()
            if self.peek()[0] != "str":
                self.fail(f"the value after {op} must be a quoted string, found {self.peek()[1]!r}")
            return ("eq" if op == "==" else "ne", key, self.take("str")[1])
        negate = False
        if (kind, op) == ("word", "not"):
            self.take()
            negate = True
        if self.peek() == ("word", "in"):
            self.take()
            self.take("op", "{")
            values = []
            while self.peek() != ("op", "}"):
                if values:
                    self.take("op", ",")
                values.append(self.take("str")[1])
            self.take("op", "}")
            return ("notin" if negate else "in", key, tuple(values))
        self.fail(f"expected an operator after label {key!r}")
        return None  # pragma: no cover


def parse(text: str):
    """The syntax tree of a selector; raises :class:`SelectorError` when Calico would reject it."""
    return _Parser(str(text)).parse()


def _evaluate(node, labels) -> bool:
    op = node[0]
    if op == "all":
        return True
    if op == "has":
        return node[1] in labels
    if op == "eq":
        return labels.get(node[1]) == node[2]
    if op == "ne":
        return labels.get(node[1]) != node[2]
    if op == "in":
        return labels.get(node[1]) in node[2]
    if op == "notin":
        return labels.get(node[1]) not in node[2]
    if op == "not":
        return not _evaluate(node[1], labels)
    if op == "and":
        return _evaluate(node[1], labels) and _evaluate(node[2], labels)
    return _evaluate(node[1], labels) or _evaluate(node[2], labels)


def matches(selector: str, labels: dict) -> bool:
    """Whether a node with ``labels`` is selected by ``selector`` (empty selector: all nodes)."""
    if not str(selector).strip():
        return True
    return _evaluate(parse(selector), dict(labels))
