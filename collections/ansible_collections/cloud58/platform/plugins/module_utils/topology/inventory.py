# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Read an Ansible inventory directory without running Ansible.

The lab driver, the renderers, the tests and ``scripts/plan.py`` plan straight from
``inventories/<dc>/``. This loader reads what ``ansible-playbook -i <dir>`` would read for
the planner's variables: the YAML inventory files of the directory (``hosts.yml``),
``group_vars/`` and ``host_vars/`` (files or directories of files), merged with Ansible's
precedence (``all`` inline < other groups inline by depth, priority, name < group_vars/all
< group_vars/<group> by depth, priority, name < host inline < host_vars/<host>; each
variable replaced, never merged). Host ranges such as ``node[01:20]`` are expanded.

What it does not do: template Jinja expressions, decrypt vault values, run inventory
plugins other than YAML. Topology fields must be literal values (the planner says so when
one is not); everything else in the inventory is read but ignored.
"""

from __future__ import annotations

import difflib
import os
import string

from .errors import MissingLibrary, Problems, did_you_mean, where_text
from .schema import CLUSTERS_VAR, DATACENTERS_VAR, HOST, ROLE_GROUPS

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - exercised only without PyYAML
    yaml = None
    HAS_YAML = False

_INVENTORY_EXTENSIONS = ("", ".yml", ".yaml", ".json")
_VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")
_GROUP_KEYS = ("hosts", "vars", "children")
# Host variables closer than this to a topology field are reported as misspellings of it.
_TYPO_CUTOFF = 0.8
# group_vars/all variable of the BGP options (module_utils/bgp/options.py), optional.
BGP_OPTIONS_VAR = "cloud58_bgp_options"


class Inventory:
    """What the planner reads from one inventory, however it was obtained.

    * ``datacenters``: the raw ``cloud58_datacenters`` value (None when undefined);
    * ``clusters``: the raw ``cloud58_clusters`` value (None when undefined);
    * ``bgp_options``: the raw ``cloud58_bgp_options`` value (None when undefined): the BGP
      options of module_utils/bgp/options.py, shared by the router configs and Calico;
    * ``hosts``: host name -> that host's topology variables (see ``host_topology_vars``);
    * ``groups``: group name -> host names;
    * ``source``: a label for messages (the directory, or ``ansible``); not part of the plan.
    """

    __slots__ = ("bgp_options", "clusters", "datacenters", "groups", "hosts", "problems", "source")

    def __init__(
        self, datacenters, clusters, hosts, groups, *, bgp_options=None, source="inventory", problems=()
    ):
        self.datacenters = datacenters
        self.clusters = clusters
        self.bgp_options = bgp_options
        self.hosts = hosts
        self.groups = groups
        self.source = source
        self.problems = list(problems)  # problems found while reading files


class VaultValue:
    """A ``!vault`` value: the offline loader cannot decrypt it."""

    def __repr__(self):
        return "<vault-encrypted value>"


def host_topology_vars(variables) -> dict:
    """The host variables the planner reads, from a host's merged variables.

    Keeps the fields of the host model, and any other variable whose name is so close to one
    of them that it is surely a misspelling (``adress``, ``racks``) so that the planner can
    report it with a did-you-mean. ``ansible_*`` and ``cloud58_*`` variables are never
    topology fields. Both the file loader and the Ansible path (filter
    ``cloud58.platform.topology_host_vars``) go through this function.
    """
    fields = HOST.fields
    out = {}
    for key in variables:
        name = str(key)
        if name in fields:
            out[name] = variables[key]
        elif name.startswith(("ansible_", "cloud58_")) or len(name) < 3:
            continue
        elif difflib.get_close_matches(name, fields, n=1, cutoff=_TYPO_CUTOFF):
            out[name] = variables[key]
    return out


def inventory_from_vars(
    datacenters, clusters, hosts, groups, *, source="ansible", bgp_options=None
) -> Inventory:
    """An Inventory from what Ansible already knows (the module and filter path).

    ``hosts`` maps host names to their variables (all of them, or only the topology ones);
    ``groups`` is Ansible's ``groups`` magic variable; ``bgp_options`` the inventory's
    ``cloud58_bgp_options`` (None when undefined).
    """
    return Inventory(
        datacenters=datacenters,
        clusters=clusters,
        bgp_options=bgp_options,
        hosts={str(h): host_topology_vars(v or {}) for h, v in (hosts or {}).items()},
        groups={str(g): [str(h) for h in (members or [])] for g, members in (groups or {}).items()},
        source=source,
    )


def load_inventory(path) -> Inventory:
    """Read an inventory directory (or one YAML inventory file) the way Ansible would.

    Files that cannot be read or parsed do not raise here: they are recorded in
    ``Inventory.problems`` and ``build_plan`` reports them with everything else.
    """
    if not HAS_YAML:
        raise MissingLibrary("reading inventory files needs PyYAML: pip install pyyaml")
    problems = Problems()
    inventory = _Reader(path, problems).read()
    inventory.problems = list(problems.items)
    return inventory


# ---- YAML ------------------------------------------------------------------------------

if HAS_YAML:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _AnsibleYamlLoader(_BaseLoader):  # pylint: disable=too-many-ancestors
        """Safe YAML plus Ansible's ``!unsafe`` and ``!vault`` tags."""

    def _unsafe(loader, node):
        return loader.construct_scalar(node)

    def _vault(loader, node):
        return VaultValue()

    _AnsibleYamlLoader.add_constructor("!unsafe", _unsafe)
    _AnsibleYamlLoader.add_constructor("!vault", _vault)


def _read_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_AnsibleYamlLoader)


def expand_host_pattern(pattern):
    """``node[01:03]`` -> node01, node02, node03 (numeric or alphabetic, optional step)."""
    if "[" not in pattern:
        return [pattern]
    head, rest = pattern.split("[", 1)
    if "]" not in rest:
        raise ValueError("unclosed '[' in host pattern")
    body, tail = rest.split("]", 1)
    bounds = body.split(":")
    if len(bounds) not in (2, 3) or not bounds[1]:
        raise ValueError("a host range is [begin:end] or [begin:end:step]")
    begin = bounds[0] or "0"
    end = bounds[1]
    step = int(bounds[2]) if len(bounds) == 3 else 1
    letters = string.ascii_letters
    if begin in letters and end in letters and len(begin) == 1 and len(end) == 1:
        seq = list(letters[letters.index(begin) : letters.index(end) + 1 : step])
    else:
        try:
            low, high = int(begin), int(end)
        except ValueError:
            raise ValueError("host range bounds must be numbers or single letters") from None
        width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
        if width and len(end) != width:
            raise ValueError("zero-padded host range bounds must have the same length")
        seq = [str(n).zfill(width) for n in range(low, high + 1, step)]
    if not seq:
        raise ValueError("host range is empty (begin > end)")
    out = []
    for item in seq:
        out.extend(expand_host_pattern(head + item + tail))
    return out


class _Group:
    __slots__ = ("children", "depth", "file_vars", "hosts", "inline_vars", "name", "parents", "priority")

    def __init__(self, name):
        self.name = name
        self.inline_vars = {}
        self.file_vars = {}
        self.hosts = []
        self.children = set()
        self.parents = set()
        self.depth = 0
        self.priority = 1


class _Reader:
    def __init__(self, path, problems):
        self.path = str(path)
        self.problems = problems
        self.groups = {"all": _Group("all"), "ungrouped": _Group("ungrouped")}
        self.groups["all"].children.add("ungrouped")
        self.groups["ungrouped"].parents.add("all")
        self.host_inline = {}  # host -> inline vars (merged across mentions, later wins)
        self.host_order = []

    def problem(self, where_file, message, value=None):
        self.problems.add(
            "unreadable-inventory", where_text(extra=f"file '{where_file}'"), "file", value, message
        )

    # -- inventory files --

    def read(self):
        if os.path.isdir(self.path):
            base = self.path
            sources = [
                os.path.join(base, name)
                for name in sorted(os.listdir(base))
                if not name.startswith(".")
                and os.path.isfile(os.path.join(base, name))
                and os.path.splitext(name)[1] in _INVENTORY_EXTENSIONS
            ]
            if not sources:
                self.problem(base, "no YAML inventory file (hosts.yml) in this directory")
        elif os.path.isfile(self.path):
            base = os.path.dirname(self.path) or "."
            sources = [self.path]
        else:
            self.problem(self.path, "no such inventory directory or file")
            return Inventory(None, None, {}, {}, source=self.path)
        for source in sources:
            try:
                data = _read_yaml(source)
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                self.problem(source, "cannot parse YAML: {}".format(" ".join(str(exc).split())))
                continue
            if data is None:
                continue
            if not isinstance(data, dict):
                self.problem(source, "a YAML inventory is a mapping of group names to groups")
                continue
            for name, body in data.items():
                self.add_group(source, str(name), body, parent=None)
        self.read_vars_dir(os.path.join(base, "group_vars"), self.groups, "group")
        host_file_vars = {}
        self.read_vars_dir(os.path.join(base, "host_vars"), host_file_vars, "host")
        self.compute_depths()
        return self.build(host_file_vars)

    def add_group(self, source, name, body, parent):
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = _Group(name)
        if parent is not None and parent != name:
            group.parents.add(parent)
            self.groups[parent].children.add(name)
        elif name != "all":
            group.parents.add("all")
            self.groups["all"].children.add(name)
        if body is None:
            return
        if not isinstance(body, dict):
            self.problem(source, f"group '{name}' must be a mapping with hosts, vars or children", body)
            return
        for key in body:
            if key not in _GROUP_KEYS:
                self.problem(
                    source,
                    f"group '{name}' has key '{key}'; a group holds only hosts, vars and children"
                    f"{did_you_mean(key, _GROUP_KEYS)}",
                )
        group_vars = body.get("vars") or {}
        if not isinstance(group_vars, dict):
            self.problem(source, f"vars of group '{name}' must be a mapping", group_vars)
        else:
            group.inline_vars.update(group_vars)
            if "ansible_group_priority" in group_vars and isinstance(
                group_vars["ansible_group_priority"], int
            ):
                group.priority = group_vars["ansible_group_priority"]
        hosts = body.get("hosts") or {}
        if not isinstance(hosts, dict):
            self.problem(source, f"hosts of group '{name}' must be a mapping of host names", hosts)
            hosts = {}
        for pattern, raw_vars in hosts.items():
            try:
                names = expand_host_pattern(str(pattern))
            except ValueError as exc:
                self.problem(source, f"host pattern '{pattern}' in group '{name}': {exc}")
                continue
            host_vars = raw_vars
            if raw_vars is not None and not isinstance(raw_vars, dict):
                self.problem(source, f"variables of host '{pattern}' must be a mapping", raw_vars)
                host_vars = None
            for host in names:
                if host not in self.host_inline:
                    self.host_inline[host] = {}
                    self.host_order.append(host)
                if host_vars:
                    self.host_inline[host].update(host_vars)
                if host not in group.hosts:
                    group.hosts.append(host)
        children = body.get("children") or {}
        if not isinstance(children, dict):
            self.problem(source, f"children of group '{name}' must be a mapping of group names", children)
            children = {}
        for child, child_body in children.items():
            self.add_group(source, str(child), child_body, parent=name)

    # -- group_vars / host_vars --

    def read_vars_dir(self, directory, target, what):
        if not os.path.isdir(directory):
            return
        for entry in sorted(os.listdir(directory)):
            if entry.startswith("."):
                continue
            full = os.path.join(directory, entry)
            stem, ext = os.path.splitext(entry)
            if os.path.isdir(full):
                name, files = entry, self.files_under(full)
            elif ext in _VARS_EXTENSIONS:
                name, files = stem, [full]
            else:
                continue
            merged = {}
            for path in files:
                try:
                    data = _read_yaml(path)
                except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                    self.problem(path, "cannot parse YAML: {}".format(" ".join(str(exc).split())))
                    continue
                if data is None:
                    continue
                if not isinstance(data, dict):
                    self.problem(path, "a vars file is a mapping of variable names to values")
                    continue
                merged.update(data)
            if what == "group":
                group = target.get(name)
                if group is None:  # Ansible ignores vars of groups that have no host; so do we
                    continue
                group.file_vars.update(merged)
            else:
                target.setdefault(name, {}).update(merged)

    @staticmethod
    def files_under(directory):
        out = []
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and os.path.splitext(name)[1] in _VARS_EXTENSIONS:
                    out.append(os.path.join(root, name))
        return out

    # -- merging --

    def compute_depths(self):
        """depth = 1 + the deepest parent's depth ('all' is 0), as Ansible sorts groups."""
        memo = {"all": 0}

        def depth(name, trail):
            if name in memo:
                return memo[name]
            parents = [p for p in self.groups[name].parents if p in self.groups and p not in trail] or ["all"]
            memo[name] = 1 + max(depth(p, trail | {name}) for p in parents)
            return memo[name]

        for name, group in self.groups.items():
            group.depth = depth(name, frozenset())

    def ancestors(self, host):
        direct = [g for g in self.groups.values() if host in g.hosts and g.name != "all"]
        found = {}
        stack = list(direct)
        while stack:
            group = stack.pop()
            if group.name in found:
                continue
            found[group.name] = group
            stack.extend(self.groups[p] for p in group.parents if p in self.groups)
        found.pop("all", None)
        return found

    def build(self, host_file_vars):
        all_group = self.groups["all"]
        all_vars = {}
        all_vars.update(all_group.inline_vars)
        all_vars.update(all_group.file_vars)
        for host in self.host_order:
            if not any(host in g.hosts for g in self.groups.values() if g.name not in ("all", "ungrouped")):
                self.groups["ungrouped"].hosts.append(host)
        hosts = {}
        memberships = {}
        for host in self.host_order:
            groups = sorted(self.ancestors(host).values(), key=lambda g: (g.depth, g.priority, g.name))
            memberships[host] = [g.name for g in groups]
            merged = dict(all_group.inline_vars)
            for group in groups:
                merged.update(group.inline_vars)
            merged.update(all_group.file_vars)
            for group in groups:
                merged.update(group.file_vars)
            merged.update(self.host_inline[host])
            merged.update(host_file_vars.get(host, {}))
            hosts[host] = host_topology_vars(merged)
        groups = {"all": list(self.host_order)}
        for name in self.groups:
            if name != "all":
                groups[name] = [h for h in self.host_order if name in memberships[h]]
        return Inventory(
            datacenters=all_vars.get(DATACENTERS_VAR),
            clusters=all_vars.get(CLUSTERS_VAR),
            bgp_options=all_vars.get(BGP_OPTIONS_VAR),
            hosts=hosts,
            groups=groups,
            source=self.path,
        )


def find_role_group_typos(groups):
    """Group names that look like misspelt role groups: [(group, suggestion)]."""
    out = []
    for name in sorted(groups):
        if name in ROLE_GROUPS or name in ("all", "ungrouped"):
            continue
        close = difflib.get_close_matches(name, list(ROLE_GROUPS), n=1, cutoff=0.8)
        if close:
            out.append((name, close[0]))
    return out


__all__ = [
    "BGP_OPTIONS_VAR",
    "Inventory",
    "expand_host_pattern",
    "find_role_group_typos",
    "host_topology_vars",
    "inventory_from_vars",
    "load_inventory",
]
