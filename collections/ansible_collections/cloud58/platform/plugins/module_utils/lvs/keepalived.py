# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The ``fnat`` data plane of an LVS director: the keepalived configuration for IPVS FNAT.

On LVS kernels with full NAT (Alibaba LVS, DPVS) IPVS does the full NAT itself, configured
by a keepalived built for them. From the plan's ``lvs`` section this writes, for one
director:

* one ``local_address_group`` (``laddr_<director>``) listing the director's local-address
  range on an interface (``laddr_interface``), as ``a.b.c.x-y <interface>`` runs;
* one ``virtual_server <VIP> <port>`` per VIP and port of the director that has
  realservers (keepalived ignores one without), VIPs in address order, ports ascending,
  with ``lb_algo``, ``lb_kind FNAT``, ``protocol TCP``, ``laddr_group_name``, ``syn_proxy``
  when asked, then the extra ``virtual_server_options`` in keyword order;
* one ``real_server <address> <port>`` per realserver (address order) with a ``TCP_CHECK``
  (``connect_timeout``, ``retry``, ``delay_before_retry``, ``delay_loop``).

:func:`nat_subset` turns such a configuration into what stock keepalived accepts, so that
``keepalived --config-test`` can check the rest of it; ``keepalived_schema`` checks the
whole of it. Pure: plain data in, text out; :class:`LvsError` names the field and the value.
"""

from __future__ import annotations

from .keepalived_schema import SCHEMA, STOCK_EQUIVALENTS, TOP, Node, check_config, parse
from .plan import LvsError, check_director, director_vips, local_addresses

DEFAULT_OPTIONS = {
    "lb_algo": "rr",
    "syn_proxy": False,
    "laddr_interface": "dpdk0",
    "connect_timeout": 3,
    "retry": 3,
    "delay_before_retry": 3,
    "delay_loop": 6,
    "virtual_server_options": {},
}
INDENT = "    "


def laddr_group_name(director):
    return f"laddr_{director}"


def address_runs(addresses):
    """IPv4 addresses in order -> ``local_address_group`` entries: runs of consecutive
    addresses within one /24 as ``a.b.c.x-y`` (``y`` at most 254), single ones as they are."""
    runs = []
    for address in addresses:
        prefix, last = address.rsplit(".", 1)
        last = int(last)
        if runs and runs[-1][0] == prefix and runs[-1][2] + 1 == last and last <= 254:
            runs[-1][2] = last
        else:
            runs.append([prefix, last, last])
    return [f"{p}.{a}" if a == b else f"{p}.{a}-{b}" for p, a, b in runs]


def _value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _option_node(keyword, value):
    if value is None:
        return Node(str(keyword), (), 0, None)
    if isinstance(value, (list, tuple)):
        return Node(str(keyword), tuple(_value(v) for v in value), 0, None)
    return Node(str(keyword), (_value(value),), 0, None)


def config_nodes(lvs, director, realservers=None, options=None):
    """The configuration of ``director`` as a tree of :class:`Node` (see the module docstring)."""
    opts = dict(DEFAULT_OPTIONS)
    unknown = sorted(set(options or {}) - set(DEFAULT_OPTIONS))
    if unknown:
        raise LvsError(f"options: {', '.join(unknown)} not one of {', '.join(sorted(DEFAULT_OPTIONS))}")
    opts.update({k: v for k, v in (options or {}).items() if v is not None})
    extra = opts["virtual_server_options"]
    if not isinstance(extra, dict):
        raise LvsError(f"virtual_server_options: {extra!r} is not a mapping of keyword to value")
    entry, plan_vips, overrides = check_director(lvs, director, realservers)
    group = laddr_group_name(director)
    laddrs = local_addresses(entry, director)
    nodes = [
        Node(
            "local_address_group",
            (group,),
            0,
            [Node(run, (_value(opts["laddr_interface"]),), 0, None) for run in address_runs(laddrs)],
        )
    ]
    check = [
        Node(keyword, (_value(opts[keyword]),), 0, None)
        for keyword in ("connect_timeout", "retry", "delay_before_retry", "delay_loop")
    ]
    for _name, address, by_port in director_vips(entry, plan_vips, overrides):
        for vip_port, targets in by_port.items():
            if not targets:
                continue  # keepalived ignores (and reports) a virtual_server without real_server
            body = [
                Node("lb_algo", (_value(opts["lb_algo"]),), 0, None),
                Node("lb_kind", ("FNAT",), 0, None),
                Node("protocol", ("TCP",), 0, None),
                Node("laddr_group_name", (group,), 0, None),
            ]
            if opts["syn_proxy"]:
                body.append(Node("syn_proxy", (), 0, None))
            body += [_option_node(k, extra[k]) for k in sorted(extra, key=str)]
            body += [
                Node(
                    "real_server", (str(rs_address), str(rs_port)), 0, [Node("TCP_CHECK", (), 0, list(check))]
                )
                for rs_address, rs_port in targets
            ]
            nodes.append(Node("virtual_server", (str(address), str(vip_port)), 0, body))
    return nodes


def _lines(nodes, depth):
    out = []
    for node in nodes:
        text = INDENT * depth + " ".join((node.keyword, *node.args))
        if node.children is None:
            out.append(text)
        else:
            out += [text + " {", *_lines(node.children, depth + 1), INDENT * depth + "}"]
    return out


def format_config(nodes, header=()):
    """The tree as keepalived text: 4-space indent, a blank line between top-level blocks."""
    parts = ["\n".join(f"# {line}" if line else "#" for line in header)] if header else []
    parts += ["\n".join(_lines([node], 0)) for node in nodes]
    return "\n\n".join(parts) + "\n"


def render_config(lvs, director, realservers=None, options=None):
    """The keepalived configuration text of ``director``'s ``fnat`` data plane."""
    header = (
        f"Managed by cloud58.platform.lvs_director (fnat data plane) for {director}; local changes are "
        f"overwritten.",
        "DPVS keepalived: lb_kind FNAT, local_address_group and syn_proxy are not stock keepalived.",
    )
    return format_config(config_nodes(lvs, director, realservers, options), header)


def _stock(nodes, block):
    out = []
    keywords = SCHEMA[block] if isinstance(SCHEMA.get(block), dict) else {}
    for node in nodes:
        spec = keywords.get(node.keyword)
        if spec is not None and spec.dpvs_only:
            continue
        args = node.args
        if args and (node.keyword, args[0]) in STOCK_EQUIVALENTS:
            args = (STOCK_EQUIVALENTS[(node.keyword, args[0])], *args[1:])
        children = node.children
        if children is not None and spec is not None and isinstance(spec.opens, str) and spec.opens in SCHEMA:
            children = _stock(children, spec.opens)
        out.append(Node(node.keyword, args, node.line, children))
    return out


def nat_subset(text, source="keepalived.conf"):
    """The NAT-compatible subset of a DPVS keepalived configuration, for stock keepalived's
    ``--config-test``: DPVS-only keywords and blocks dropped (``local_address_group``,
    ``laddr_group_name``, ``syn_proxy``, ...), DPVS-only values replaced by their stock
    equivalent (``lb_kind FNAT`` -> ``NAT``, ``lb_algo conhash`` -> ``sh``)."""
    problems = check_config(text, source)
    if problems:
        raise LvsError("; ".join(problems))
    nodes, _errors = parse(text, source)
    return format_config(_stock(nodes, TOP))
