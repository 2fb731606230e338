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

TABLE = "cloud58_fullnat"
SCHEDULERS = ("rr", "random", "sh")
DEFAULT_SLOTS = 256
MAX_SLOTS = 65536
# Fixed so that every director (and every apply) hashes a client to the same slot.
JHASH_SEED = "0xc1058"
VERSION = "v1"
SETS = ("vips", "realservers", "local_addresses")


class LvsError(Exception):
    """Bad input for the full-NAT data plane; the message names the field and the value."""


def _ipv4(value, field):
    try:
        return ipaddress.IPv4Address(value)
    except (ipaddress.AddressValueError, ValueError, TypeError) as e:
        raise LvsError(f"{field}: {value!r} is not an IPv4 address") from e


def _port(value, field):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise LvsError(f"{field}: {value!r} is not a TCP port (1-65535)")
    return value


def _pick(scheduler, slots):
    if scheduler == "rr":
        return f"numgen inc mod {slots}"
    if scheduler == "random":
        return f"numgen random mod {slots}"
    return f"jhash ip saddr mod {slots} seed {JHASH_SEED}"


def structure(scheduler, slots):
    """The comment of the dnat rule: what a change of needs a new table for."""
    return f"cloud58-fullnat {VERSION} scheduler={scheduler} slots={slots}"


def _local_addresses(director, name):
    pool = director.get("local_addresses")
    field = f"lvs.directors.{name}.local_addresses"
    if not pool:
        raise LvsError(
            f"{field}: director {name!r} has no local-address range in the plan "
            "(set networks.local_address_pool and lvs.local_addresses_per_director)"
        )
    first = _ipv4(pool.get("first"), f"{field}.first")
    count = pool.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise LvsError(f"{field}.count: {count!r} is not a positive number of addresses")
    return [str(first + i) for i in range(count)]


def _realservers(vip, entries, field):
    """``entries`` (dicts with address, port and optional vip_port) -> {vip_port: [(addr, port)]}."""
    out = {port: [] for port in vip["ports"]}
    if not isinstance(entries, list):
        raise LvsError(f"{field}: {entries!r} is not a list of realservers")
    for index, entry in enumerate(entries):
        where = f"{field}[{index}]"
        if not isinstance(entry, dict):
            raise LvsError(f"{where}: {entry!r} is not a mapping with address and port")
        address = _ipv4(entry.get("address"), f"{where}.address")
        port = _port(entry.get("port"), f"{where}.port")
        vip_port = entry.get("vip_port")
        vip_port = port if vip_port is None else _port(vip_port, f"{where}.vip_port")
        if vip_port not in out:
            raise LvsError(
                f"{where}.vip_port: {vip_port} is not a port of VIP {vip['name']!r} "
                f"(ports: {', '.join(str(p) for p in vip['ports'])})"
            )
        target = (address, port)
        if target in out[vip_port]:
            raise LvsError(f"{where}: {address}:{port} is listed twice for {vip['name']}:{vip_port}")
        out[vip_port].append(target)
    return out


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
    directors = (lvs or {}).get("directors") or {}
    if director not in directors:
        known = ", ".join(sorted(directors)) or "none"
        raise LvsError(f"director: {director!r} is not an LVS director of the plan (directors: {known})")
    plan_vips = lvs.get("vips") or {}
    mine = directors[director].get("vips") or []
    overrides = dict(realservers or {})
    for name in sorted(overrides):
        if name not in plan_vips:
            known = ", ".join(sorted(plan_vips)) or "none"
            raise LvsError(f"realservers: VIP {name!r} is not in the plan's lvs.vips (VIPs: {known})")
        if name not in mine:
            raise LvsError(
                f"realservers: VIP {name!r} is not assigned to director {director!r} "
                f"(its directors: {', '.join(plan_vips[name].get('directors') or []) or 'none'})"
            )

    laddrs = _local_addresses(directors[director], director)
    if len(laddrs) > slots:
        raise LvsError(f"slots: {slots} is fewer than the {len(laddrs)} local addresses of {director!r}")
    elements = {name: {} for name in SETS}
    for name in sorted(mine, key=lambda n: (_ipv4(plan_vips[n]["address"], f"lvs.vips.{n}.address"), n)):
        vip = plan_vips[name]
        address = _ipv4(vip["address"], f"lvs.vips.{name}.address")
        if name in overrides:
            by_port = _realservers(vip, overrides[name], f"realservers.{name}")
        else:
            by_port = _realservers(vip, vip.get("real_servers") or [], f"lvs.vips.{name}.real_servers")
        elements["vips"][str(address)] = None
        for vip_port in sorted(by_port):
            targets = sorted(by_port[vip_port])
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


def _key_order(key):
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
                state["elements"][obj["name"]] = {k: elements[k] for k in sorted(elements, key=_key_order)}
        rule = item.get("rule")
        if rule and rule.get("table") == table and rule.get("chain") == "prerouting":
            state["structure"] = rule.get("comment")
    return state
