# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Our keyword schema of DPVS's keepalived (the LVS checker part), and a checker for it.

Stock keepalived rejects the keywords of the FNAT data plane (``lb_kind FNAT``,
``local_address_group``, ``laddr_group_name``, ``syn_proxy``), so ``keepalived
--config-test`` cannot check what the ``fnat`` data plane writes. The schema below says, for
every keyword, in which block it may stand, how many arguments of which kind it takes and
whether it opens a block of its own. It was written by hand (no code copied) from reading

* github.com/iqiyi/dpvs at tag v1.10.2, commit 4582d20dc6cc16ab123c3b72e245e3ec9a47965b
  (its keepalived is based on keepalived 2.0.19):
  ``tools/keepalived/keepalived/check/check_parser.c`` (``init_check_keywords``: the
  top-level, ``virtual_server`` and ``real_server`` keywords and their handlers),
  ``check/check_api.c`` (``install_checker_common_keywords``: the keywords of a checker),
  ``check/check_tcp.c`` (``TCP_CHECK``), ``check/check_data.c`` (``alloc_laddr_entry``: the
  entries of a ``local_address_group``), ``lib/utils.c`` (``inet_stor``: address ranges),
  ``lib/parser.c`` (comments, ``check_true_false``) and ``include/conf/service.h``
  (``proxy_protocol`` values);
* github.com/acassen/keepalived at tag v2.2.7 (commit
  e7c9e7f16535a31ccf61154011519ff9c97d52a3, the keepalived of this machine), the same
  files, to mark what DPVS adds (``dpvs_only``) and what stock keepalived calls otherwise
  (:data:`STOCK_EQUIVALENTS`).

Covered: the top level of the checker part, ``virtual_server``, ``real_server``,
``TCP_CHECK`` and the entries of ``local_address_group``. The other checker blocks
(``HTTP_GET``, ``MISC_CHECK``, ..., ``virtual_server_group``, ``SSL``, ``tunnel_group``,
the address-list groups) are known but their contents are not in the schema; the checker
says so. ``global_defs``, ``vrrp_*`` and ``include`` are not part of it either.

Beyond keywords the checker knows one rule of the parser's data: a ``virtual_server`` without
``real_server`` is reported and ignored (``check_data.c``), so it is an error here.

The checker reads the layout the renderer writes: one keyword per line, a block opened by
``{`` at the end of its keyword's line and closed by ``}`` on a line of its own; ``#`` and
``!`` start comments. It is stricter than keepalived in one way: a keyword that takes no
argument takes none (keepalived ignores extra words after flags).

Pure: text in, a list of error strings out (``<source>:<line>: <block>: <problem>``).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections import namedtuple

TOP = "top level"

# One argument: what the error calls it, its kind (see _KIND_CHECKS) and the kind's parameter.
Arg = namedtuple("Arg", "label kind param")
# One keyword: its arguments, how many of them are required, whether more words may follow
# (free text such as a script), the block it opens (None: a plain line) and whether only
# DPVS's keepalived knows it.
Kw = namedtuple("Kw", "args required rest opens dpvs_only")

UINT32_MAX = 4294967295
SCHEDULERS = (
    "rr",
    "wrr",
    "lc",
    "wlc",
    "lblc",
    "sh",
    "mh",
    "dh",
    "fo",
    "ovf",
    "lblcr",
    "sed",
    "nq",
    "conhash",
)
METHODS = ("NAT", "DR", "TUN", "FNAT", "SNAT")
PROTOCOLS = ("TCP", "UDP", "SCTP", "ICMP", "ICMPV6")
BOOLEANS = ("true", "on", "yes", "false", "off", "no")

# What stock keepalived 2.2.7 accepts instead of a DPVS-only value (the NAT-compatible subset).
STOCK_EQUIVALENTS = {
    ("lb_kind", "FNAT"): "NAT",
    ("lb_kind", "SNAT"): "NAT",
    ("lvs_method", "FNAT"): "NAT",
    ("lvs_method", "SNAT"): "NAT",
    ("lb_algo", "conhash"): "sh",
    ("lvs_sched", "conhash"): "sh",
}

# Blocks DPVS's keepalived knows whose contents this schema does not cover.
UNCOVERED = "uncovered"
# Blocks whose lines are entries (address lists), not keywords.
ENTRIES = "entries"


def _kw(*args, required=None, rest=False, opens=None, dpvs_only=False):
    return Kw(tuple(args), len(args) if required is None else required, rest, opens, dpvs_only)


def _uint(label, low=0, high=UINT32_MAX):
    return Arg(label, "uint", (low, high))


def _timer(low):
    return Arg("seconds", "timer", low)


def _choice(label, values, nocase=False):
    return Arg(label, "choice", (values, nocase))


_NAME = Arg("name", "word", None)
_IP = Arg("address", "ip", None)
_PORT = _uint("port", 1, 65535)
_BOOL = _choice("true or false", BOOLEANS)
_TEXT = Arg("text", "word", None)
_FLAG = _kw()
_CHECKER = _kw(opens=UNCOVERED)

SCHEMA = {
    TOP: {
        "virtual_server": _kw(
            Arg("address, fwmark or group", "vs", None), _TEXT, required=1, opens="virtual_server"
        ),
        "local_address_group": _kw(_NAME, opens="local_address_group", dpvs_only=True),
        "deny_address_group": _kw(_NAME, opens=UNCOVERED, dpvs_only=True),
        "allow_address_group": _kw(_NAME, opens=UNCOVERED, dpvs_only=True),
        "virtual_server_group": _kw(_NAME, opens=UNCOVERED),
        "tunnel_group": _kw(_NAME, opens=UNCOVERED, dpvs_only=True),
        "SSL": _kw(opens=UNCOVERED),
    },
    "virtual_server": {
        "ip_family": _kw(_choice("address family", ("inet", "inet6"))),
        "retry": _kw(_uint("count", 1)),
        "delay_before_retry": _kw(_timer(0)),
        "warmup": _kw(_timer(0)),
        "connect_timeout": _kw(_timer(1)),
        "delay_loop": _kw(_timer(1)),
        "inhibit_on_failure": _FLAG,
        "lb_algo": _kw(_choice("scheduler", SCHEDULERS)),
        "lvs_sched": _kw(_choice("scheduler", SCHEDULERS)),
        "hashed": _FLAG,
        "ops": _FLAG,
        "flag-1": _FLAG,
        "flag-2": _FLAG,
        "flag-3": _FLAG,
        "sh-port": _FLAG,
        "sh-fallback": _FLAG,
        "mh-port": _FLAG,
        "mh-fallback": _FLAG,
        "lb_kind": _kw(_choice("forwarding method", METHODS), rest=True),
        "lvs_method": _kw(_choice("forwarding method", METHODS), rest=True),
        "establish_timeout": _kw(_uint("seconds", 1, 3600), dpvs_only=True),
        "proxy_protocol": _kw(
            _choice("proxy protocol", ("v1", "v2", "v1-insecure", "v2-insecure"), True), dpvs_only=True
        ),
        "persistence_engine": _kw(_NAME),
        "persistence_timeout": _kw(_uint("seconds", 1), required=0),
        "persistence_granularity": _kw(Arg("netmask or prefix length", "word", None)),
        "bps": _kw(_uint("bytes per second"), dpvs_only=True),
        "limit_proportion": _kw(_uint("percent"), dpvs_only=True),
        "protocol": _kw(_choice("protocol", PROTOCOLS, True)),
        "ha_suspend": _FLAG,
        "smtp_alert": _kw(_BOOL, required=0),
        "virtualhost": _kw(_TEXT, rest=True),
        "src-range": _kw(Arg("address range", "word", None), dpvs_only=True),
        "dst-range": _kw(Arg("address range", "word", None), dpvs_only=True),
        "oif": _kw(Arg("interface", "word", None), dpvs_only=True),
        "iif": _kw(Arg("interface", "word", None), dpvs_only=True),
        "hash_target": _kw(_choice("hash target", ("sip", "qid")), dpvs_only=True),
        "alpha": _FLAG,
        "omega": _FLAG,
        "quorum_up": _kw(Arg("script", "word", None), rest=True),
        "quorum_down": _kw(Arg("script", "word", None), rest=True),
        "quorum": _kw(_uint("count", 1)),
        "hysteresis": _kw(_uint("count")),
        "weight": _kw(_uint("weight", 1, 65535)),
        "sorry_server": _kw(_IP, _PORT, required=1),
        "sorry_server_inhibit": _FLAG,
        "sorry_server_lvs_method": _kw(_choice("forwarding method", METHODS), rest=True),
        "real_server": _kw(_IP, _PORT, required=1, opens="real_server"),
        "laddr_group_name": _kw(_NAME, dpvs_only=True),
        "daddr_group_name": _kw(_NAME, dpvs_only=True),
        "waddr_group_name": _kw(_NAME, dpvs_only=True),
        "syn_proxy": _kw(dpvs_only=True),
        "expire_quiescent_conn": _kw(dpvs_only=True),
        "quic": _kw(dpvs_only=True),
        "vip_bind_dev": _kw(Arg("interface", "word", None), dpvs_only=True),
    },
    "real_server": {
        "weight": _kw(_uint("weight", 0, 65535)),
        "lvs_method": _kw(_choice("forwarding method", METHODS), rest=True),
        "uthreshold": _kw(_uint("connections")),
        "lthreshold": _kw(_uint("connections")),
        "inhibit_on_failure": _kw(_BOOL, required=0),
        "notify_up": _kw(Arg("script", "word", None), rest=True),
        "notify_down": _kw(Arg("script", "word", None), rest=True),
        "alpha": _kw(_BOOL, required=0),
        "retry": _kw(_uint("count", 1)),
        "delay_before_retry": _kw(_timer(0)),
        "warmup": _kw(_timer(0)),
        "connect_timeout": _kw(_timer(1)),
        "delay_loop": _kw(_timer(1)),
        "smtp_alert": _kw(_BOOL, required=0),
        "virtualhost": _kw(_TEXT, rest=True),
        "TCP_CHECK": _kw(opens="TCP_CHECK"),
        "MISC_CHECK": _CHECKER,
        "SMTP_CHECK": _CHECKER,
        "UDP_CHECK": _CHECKER,
        "HTTP_GET": _CHECKER,
        "SSL_GET": _CHECKER,
        "DNS_CHECK": _CHECKER,
        "BFD_CHECK": _CHECKER,
    },
    "TCP_CHECK": {
        "connect_ip": _kw(_IP),
        "connect_port": _kw(_PORT),
        "bindto": _kw(_IP),
        "bind_port": _kw(_PORT),
        "bind_if": _kw(Arg("interface", "word", None)),
        "connect_timeout": _kw(_timer(1)),
        "fwmark": _kw(_uint("mark")),
        "retry": _kw(_uint("count")),
        "delay_before_retry": _kw(_timer(0)),
        "warmup": _kw(_timer(0)),
        "delay_loop": _kw(_timer(1)),
        "alpha": _kw(_BOOL, required=0),
        "log_all_failures": _kw(_BOOL, required=0),
    },
    # entries "<IPv4 address>[-<last byte>] <interface>" (alloc_laddr_entry, inet_stor)
    "local_address_group": ENTRIES,
}

Node = namedtuple("Node", "keyword args line children")
Node.__doc__ = """One line of a keepalived configuration: keyword, arguments, line number, and
the nodes of the block it opens (None for a plain line)."""

_TIMER = re.compile(r"^[0-9]+(\.[0-9]{1,6})?$")
_RANGE = re.compile(r"^([0-9.]+)(?:-([0-9]+))?$")


def _words(line):
    """The words of one line: ``{``/``}`` are words of their own, quotes keep spaces,
    ``#`` and ``!`` outside quotes end the line."""
    words, word, quoted, started = [], "", False, False  # started: a word (maybe "") is open
    for ch in line:
        if quoted:
            if ch == '"':
                quoted = False
            else:
                word += ch
            continue
        if ch == '"':
            quoted, started = True, True
        elif ch in "#!":
            break
        elif ch.isspace() or ch in "{}":
            if started:
                words.append(word)
            word, started = "", False
            if ch in "{}":
                words.append(ch)
        else:
            word += ch
            started = True
    if started:
        words.append(word)
    return words


def parse(text, source="keepalived.conf"):
    """``text`` -> ``(nodes, errors)``: the tree of :class:`Node` and the layout errors."""
    root = []
    stack = [(TOP, root, 0)]
    errors = []
    for number, line in enumerate(text.splitlines(), 1):
        words = _words(line)
        if not words:
            continue
        label = stack[-1][0]
        if words == ["}"]:
            if len(stack) == 1:
                errors.append(f"{source}:{number}: {label}: '}}' closes no block")
            else:
                stack.pop()
            continue
        opens = words[-1] == "{"
        body = words[:-1] if opens else words
        if not body or "{" in body or "}" in body:
            errors.append(
                f"{source}:{number}: {label}: put one keyword on a line, '{{' at its end and '}}' on a line "
                f"of its own"
            )
            continue
        node = Node(body[0], tuple(body[1:]), number, [] if opens else None)
        stack[-1][1].append(node)
        if opens:
            stack.append((" ".join(body), node.children, number))
    for label, _children, number in reversed(stack[1:]):
        errors.append(f"{source}:{number}: {label}: the block is not closed ('}}' missing)")
    return root, errors


def _arg_problem(arg, value):
    """None when ``value`` is a good ``arg``, else what is wrong (without the keyword)."""
    if arg.kind == "word":
        return None
    if arg.kind == "ip":
        try:
            ipaddress.ip_address(value)
            return None
        except ValueError:
            return f"{value!r} is not an IP address"
    if arg.kind == "uint":
        low, high = arg.param
        if value.isdigit() and low <= int(value) <= high:
            return None
        return f"{value!r} is not a {arg.label} ({low}-{high})"
    if arg.kind == "timer":
        if _TIMER.match(value) and float(value) >= arg.param:
            return None
        return f"{value!r} is not a number of seconds (at least {arg.param})"
    if arg.kind == "choice":
        values, nocase = arg.param
        if value in values or (nocase and value.upper() in (v.upper() for v in values)):
            return None
        return f"{value!r} is not a {arg.label} ({', '.join(values)})"
    raise ValueError(f"schema: unknown argument kind {arg.kind!r}")


def _vs_problem(args):
    """The arguments of ``virtual_server``: ``<address> <port>``, ``fwmark <mark>`` or ``group <name>``."""
    first, rest = args[0], args[1:]
    if first in ("fwmark", "group"):
        if len(rest) != 1:
            return f"'virtual_server {first}' needs one {'mark' if first == 'fwmark' else 'group name'}"
        return _arg_problem(_uint("mark", 1), rest[0]) if first == "fwmark" else None
    problem = _arg_problem(_IP, first)
    if problem:
        return f"{problem} (nor fwmark or group)"
    if len(rest) > 1:
        return f"'virtual_server' takes an address and a port, got {' '.join(args)!r}"
    return _arg_problem(_uint("port", 0, 65535), rest[0]) if rest else None


def _args_problems(keyword, spec, args):
    labels = " ".join(f"<{a.label}>" for a in spec.args)
    if len(args) < spec.required:
        got = "nothing" if not args else repr(" ".join(args))
        return [f"'{keyword}' needs {labels}, got {got}"]
    if not spec.rest and len(args) > len(spec.args):
        wanted = f"at most {labels}" if spec.args else "no argument"
        return [f"'{keyword}' takes {wanted}, got {' '.join(args)!r}"]
    if spec.args and spec.args[0].kind == "vs":
        problem = _vs_problem(args)
        return [problem] if problem else []
    problems = []
    for arg, value in zip(spec.args, args[: len(spec.args)], strict=True):
        problem = _arg_problem(arg, value)
        if problem:
            problems.append(f"'{keyword}' {problem}")
    return problems


def _entry_problems(node):
    """An entry of ``local_address_group``: ``<IPv4 address>[-<last byte>] <interface>``."""
    words = (node.keyword, *node.args)
    if len(words) != 2:
        return [f"entry {' '.join(words)!r} is not '<IPv4 address>[-<last byte>] <interface>'"]
    match = _RANGE.match(words[0])
    try:
        first = ipaddress.IPv4Address(match.group(1)) if match else None
    except ValueError:
        first = None
    if first is None:
        return [f"entry {words[0]!r} is not an IPv4 address or range"]
    if match.group(2) is not None:
        start, end = int(str(first).rsplit(".", 1)[1]), int(match.group(2))
        if not start < end <= 254:
            return [f"entry {words[0]!r}: the range's last byte must be above {start} and at most 254"]
    return []


def _blocks_of(keyword):
    return sorted(
        name for name, keywords in SCHEMA.items() if isinstance(keywords, dict) and keyword in keywords
    )


def _check_nodes(nodes, block, label, source, errors):
    keywords = SCHEMA[block]
    for node in nodes:
        at = f"{source}:{node.line}: {label}"
        if keywords == ENTRIES:
            if node.children is not None:
                errors.append(f"{at}: entry {node.keyword!r} opens a block; {block} holds entries only")
            errors.extend(f"{at}: {p}" for p in _entry_problems(node))
            continue
        spec = keywords.get(node.keyword)
        if spec is None:
            elsewhere = _blocks_of(node.keyword)
            if elsewhere:
                errors.append(f"{at}: '{node.keyword}' belongs in {' or '.join(elsewhere)}, not in {block}")
            else:
                near = difflib.get_close_matches(node.keyword, list(keywords), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                errors.append(f"{at}: unknown keyword '{node.keyword}'{hint}")
            continue
        errors.extend(f"{at}: {p}" for p in _args_problems(node.keyword, spec, node.args))
        if spec.opens and node.children is None:
            errors.append(f"{at}: '{node.keyword}' opens a block: end the line with '{{'")
        elif not spec.opens and node.children is not None:
            errors.append(f"{at}: '{node.keyword}' does not open a block")
        elif spec.opens == UNCOVERED:
            errors.append(
                f"{at}: '{node.keyword}' is a block of DPVS keepalived whose contents this schema does not "
                f"cover"
            )
        elif spec.opens:
            if spec.opens == "virtual_server" and not any(n.keyword == "real_server" for n in node.children):
                errors.append(f"{at}: 'virtual_server' has no real_server (keepalived ignores it)")
            _check_nodes(node.children, spec.opens, " ".join((node.keyword, *node.args)), source, errors)


def check_config(text, source="keepalived.conf"):
    """Every problem of ``text`` against the schema, in line order; ``[]`` when it is good.

    Each problem reads ``<source>:<line>: <block>: <what is wrong>``.
    """
    nodes, errors = parse(text, source)
    _check_nodes(nodes, TOP, TOP, source, errors)
    return sorted(errors, key=lambda e: int(e[len(source) + 1 :].split(":", 1)[0]))
