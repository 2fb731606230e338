# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Full NAT for one LVS director in nftables: the desired state, the ruleset, the difference.

One table of its own (``table ip cloud58_fullnat``) holds three containers and two rules:

* set ``vips``: the addresses of the VIPs the plan assigns to the director;
* map ``realservers``: ``VIP . port . slot`` -> ``realserver . port``; every VIP:port has
  ``slots`` slots, dealt round-robin over its realservers in address order;
* map ``local_addresses``: ``slot`` -> a local address of the director's range;
* prerouting: ``ip daddr @vips dnat`` to the map lookup of ``ip daddr . tcp dport . <pick>``,
  where the pick is ``numgen inc`` (rr), ``numgen random`` (random) or ``jhash ip saddr``
  (sh, with a fixed seed so every director picks the same realserver for a client);
* postrouting: connections DNATed from a VIP are SNATed to a local address picked by a hash
  of the client's address and port (full NAT: the realserver sees the local address).

Realservers, VIPs and local addresses are *elements*: a change is applied as ``delete
element`` / ``add element`` commands in one ``nft -f`` transaction, never by reloading the
table. Only the scheduler and the slot count are *structure* (they are in the rules); the
dnat rule's comment records them so that a change of structure is detected.

Everything here is pure: plain data in, text or plain data out. :class:`LvsError` names the
field and the bad value.
"""

from __future__ import annotations

import ipaddress

from .plan import LvsError, check_director, director_vips, local_addresses

TABLE = "cloud58_fullnat"
SCHEDULERS = ("rr", "random", "sh")
DEFAULT_SLOTS = 256
MAX_SLOTS = 65536
# Fixed so that every director (and every apply) hashes a client to the same slot.
JHASH_SEED = "0xc1058"
VERSION = "v1"
SETS = ("vips", "realservers", "local_addresses")


def _pick(scheduler, slots):
    if scheduler == "rr":
        return f"numgen inc mod {slots}"
    if scheduler == "random":
        return f"numgen random mod {slots}"
    return f"jhash ip saddr mod {slots} seed {JHASH_SEED}"


def structure(scheduler, slots):
    """The comment of the dnat rule: what a change of needs a new table for."""
    return f"cloud58-fullnat {VERSION} scheduler={scheduler} slots={slots}"


def director_state(lvs, director, realservers=None, scheduler="rr", slots=DEFAULT_SLOTS):
    """The desired data plane of ``director`` from the plan's ``lvs`` section of its datacenter.

    ``realservers`` maps VIP names to lists of ``{address, port, vip_port}`` (``vip_port``
    defaults to ``port``) and replaces the plan's ``real_servers`` of the VIPs it names.
    Returns ``{"scheduler", "slots", "elements": {set name: {key: value or None}}}``.
    """
    if scheduler not in SCHEDULERS:
        raise LvsError(f"scheduler: {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    if isinstance(slots, bool) or not isinstance(slots, int) or not 0 < slots <= MAX_SLOTS:
        raise LvsError(f"slots: {slots!r} is not a number of slots between 1 and {MAX_SLOTS}")
    entry, plan_vips, overrides = check_director(lvs, director, realservers)
    laddrs = local_addresses(entry, director)
    if len(laddrs) > slots:
        raise LvsError(f"slots: {slots} is fewer than the {len(laddrs)} local addresses of {director!r}")
    elements = {name: {} for name in SETS}
    for name, address, by_port in director_vips(entry, plan_vips, overrides):
        elements["vips"][str(address)] = None
        for vip_port, targets in by_port.items():
            if len(targets) > slots:
                raise LvsError(
                    f"slots: {slots} is fewer than the {len(targets)} realservers of {name}:{vip_port}"
                )
            for slot in range(slots if targets else 0):
                rs_address, rs_port = targets[slot % len(targets)]
                elements["realservers"][f"{address} . {vip_port} . {slot}"] = f"{rs_address} . {rs_port}"
    for slot in range(slots):
        elements["local_addresses"][str(slot)] = laddrs[slot % len(laddrs)]
    return {"scheduler": scheduler, "slots": slots, "elements": elements}


def _element_text(key, value):
    return key if value is None else f"{key} : {value}"


def _elements_block(elements, indent):
    if not elements:
        return []
    pad = "\t" * indent
    items = [_element_text(k, v) for k, v in elements.items()]
    return [f"{pad}elements = {{ " + f",\n{pad}\t     ".join(items) + " }"]


def render_ruleset(state, table=TABLE):
    """The whole table for ``nft -f``: deterministic text, elements in plan order."""
    slots, scheduler = state["slots"], state["scheduler"]
    elements = state["elements"]
    lines = [f"table ip {table} {{", "\tset vips {", "\t\ttype ipv4_addr"]
    lines += _elements_block(elements["vips"], 2)
    lines += [
        "\t}",
        "",
        "\tmap realservers {",
        f"\t\ttypeof ip daddr . tcp dport . numgen inc mod {slots} : ip daddr . tcp dport",
    ]
    lines += _elements_block(elements["realservers"], 2)
    lines += ["\t}", "", "\tmap local_addresses {", f"\t\ttypeof numgen inc mod {slots} : ip saddr"]
    lines += _elements_block(elements["local_addresses"], 2)
    lines += [
        "\t}",
        "",
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        f"\t\tip daddr @vips dnat ip to ip daddr . tcp dport . {_pick(scheduler, slots)} map @realservers"
        f' comment "{structure(scheduler, slots)}"',
        "\t}",
        "",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        "\t\tct status dnat ct original ip daddr @vips"
        f" snat ip to jhash ip saddr . tcp sport mod {slots} seed {JHASH_SEED} map @local_addresses",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def element_changes(before, after):
    """Per set: the elements to delete and to add (a changed map value is both) turning
    ``before`` into ``after`` (both ``{set name: {key: value or None}}``)."""
    out = {}
    for name in SETS:
        old, new = before.get(name, {}), after.get(name, {})
        delete = {k: v for k, v in old.items() if k not in new or new[k] != v}
        add = {k: v for k, v in new.items() if k not in old or old[k] != v}
        if delete or add:
            out[name] = {"delete": delete, "add": add}
    return out


def element_commands(changes, table=TABLE):
    """``element_changes`` as one ``nft -f`` transaction: every delete, then every add."""
    lines = []
    for verb in ("delete", "add"):
        for name in SETS:
            items = changes.get(name, {}).get(verb)
            if not items:
                continue
            # a delete names keys only; an add carries the map values
            text = ", ".join(k if verb == "delete" else _element_text(k, v) for k, v in items.items())
            lines.append(f"{verb} element ip {table} {name} {{ {text} }}")
    return "\n".join(lines) + "\n" if lines else ""


def _json_value(value, field):
    if isinstance(value, dict) and "concat" in value:
        return " . ".join(str(_json_value(v, field)) for v in value["concat"])
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise LvsError(f"{field}: unexpected element {value!r} in the output of nft -j")


def element_order(key):
    """Elements in the order the ruleset lists them: addresses and numbers by value."""
    parts = []
    for part in key.split(" . "):
        try:
            parts.append((0, int(part) if part.isdigit() else int(ipaddress.IPv4Address(part)), ""))
        except ValueError:
            parts.append((1, 0, part))
    return parts


def read_table(data, table=TABLE):
    """The output of ``nft -j list table ip <table>`` (parsed JSON) -> the live state:
    ``{"structure": dnat rule comment or None, "handle": table handle, "elements": {...}}``,
    the elements of each set in the order :func:`render_ruleset` lists them."""
    items = data.get("nftables", []) if isinstance(data, dict) else []
    state = {"structure": None, "handle": None, "elements": {}}
    for item in items:
        if "table" in item and item["table"].get("name") == table:
            state["handle"] = item["table"].get("handle")
        for kind in ("set", "map"):
            obj = item.get(kind)
            if obj and obj.get("table") == table and obj.get("name") in SETS:
                field = f"table {table} {kind} {obj['name']}"
                elements = {}
                for elem in obj.get("elem", []):
                    if kind == "map":
                        elements[_json_value(elem[0], field)] = _json_value(elem[1], field)
                    else:
                        elements[_json_value(elem, field)] = None
                state["elements"][obj["name"]] = {k: elements[k] for k in sorted(elements, key=element_order)}
        rule = item.get("rule")
        if rule and rule.get("table") == table and rule.get("chain") == "prerouting":
            state["structure"] = rule.get("comment")
    return state
