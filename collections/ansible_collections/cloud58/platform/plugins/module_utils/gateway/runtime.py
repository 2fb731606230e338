# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""A gateway backend's servers from Consul through HAProxy's runtime API (pure).

With ``backend_source: runtime`` (``haproxy.py``) every backend has ``servers`` slots that
nothing in HAProxy fills: ``server-template <name>- <n> <name>.slot.invalid:1 disabled init-addr
last,0.0.0.0`` (:func:`slot_server`). The program
``cloud58-gateway-sync`` reads Consul's passing instances of the backend's service
(``/v1/health/service/<name>?passing=true``) and HAProxy's ``show servers state <backend>``,
and sends the commands :func:`plan` computes over the stats socket.

:func:`plan` makes the slots that are not in maintenance hold exactly the passing instances,
each once, and touches no slot that is already right:

1. a slot in service whose address and port is a passing instance (the first such slot, by
   ``srv_id``) keeps it: no command; any other slot in service, an instance gone or failing or
   a second slot of the same instance, goes to ``state maint``;
2. each instance left, in address then port order, takes a free slot (in maintenance): first
   one that already holds its address and port (only ``state ready``: an instance whose check
   passes again), then the lowest ``srv_id`` among the slots that were already free, then
   among those emptied in step 1; ``set server <b>/<s> addr <ip> port <p>`` then
   ``state ready``.

Commands come out in that order: every ``maint`` first (by ``srv_id``), then each new
instance's ``addr`` and ``ready``; the same inputs give the same commands.

More passing instances than slots is not an error: the instances already in a slot keep it,
the new ones fill the free slots in address order, and the rest are returned in
``Plan.overflow`` (the program logs them; raise the backend's ``servers`` to make room). An
instance whose address is not an IP address (a host name in Consul) cannot be set through
``set server ... addr`` and is returned in ``Plan.unusable`` with the reason. A backend whose
slots are filled by DNS (``srvrecord`` set, or a ``srv_fqdn`` other than the slots' own name) is
refused (:class:`RuntimeSyncError`): two owners of the same slots would undo each other.

Why a name under ``.invalid`` (RFC 6761: never resolves) and port 1 rather than ``0.0.0.0:0``:
HAProxy 2.6 restores a server's address from the server-state file after a reload only through
``init-addr last``, which it consults only for a server declared by name; and a server declared
with port 0 keeps meaning "the port the client connected to" after a reload although the state
shows the saved port. With ``0.0.0.0:0`` every slot came back from a reload in service at
0.0.0.0 and every request failed (503) until the program set it again.
"""

from __future__ import annotations

import dataclasses
import ipaddress

# srv_admin_state bits (HAProxy 2.6 include/haproxy/server-t.h): forced maintenance (FMAINT,
# "state maint" and the config's "disabled"), inherited from a tracked server (IMAINT),
# unresolved address (RMAINT); SRV_ADMF_MAINT is their union. "disabled" also sets CMAINT
# (0x04), which "state ready" leaves set although the server is back in service.
SRV_ADMF_MAINT = 0x23
# show servers state: the header's first line is the format version
STATE_VERSION = "1"
# The slots' placeholder name and port (see the module docstring); the name never resolves and
# HAProxy has no resolvers for it, init-addr gives 0.0.0.0 to a slot the state file lacks.
SLOT_DOMAIN = "slot.invalid"
SLOT_PORT = 1


def slot_fqdn(backend: str) -> str:
    return f"{backend}.{SLOT_DOMAIN}"


def slot_server(backend: str) -> str:
    """What follows ``server-template <backend>- <n>`` for the runtime slots (haproxy.py renders it)."""
    return f"{slot_fqdn(backend)}:{SLOT_PORT} disabled init-addr last,0.0.0.0"


class RuntimeSyncError(ValueError):
    """An answer of Consul or HAProxy that cannot be acted on; the message names the backend."""


@dataclasses.dataclass(frozen=True)
class Slot:
    """One server of a backend as ``show servers state`` lists it."""

    id: int
    name: str
    address: str
    port: int
    admin: int

    @property
    def in_service(self) -> bool:
        return self.admin & SRV_ADMF_MAINT == 0


@dataclasses.dataclass(frozen=True)
class Plan:
    commands: tuple[str, ...]
    overflow: tuple[tuple[str, int], ...] = ()
    unusable: tuple[tuple[str, str], ...] = ()  # (instance ID, reason)


def parse_servers_state(text: str, backend: str) -> list[Slot]:
    """The slots of ``backend`` in ``show servers state <backend>`` output, by ``srv_id``.
    The columns are read by the names of the header line, not by position."""
    lines = text.splitlines()
    if len(lines) < 2 or lines[0].strip() != STATE_VERSION or not lines[1].startswith("# "):
        first = lines[0] if lines else ""
        raise RuntimeSyncError(
            f"backend {backend!r}: not an answer of 'show servers state' (version {STATE_VERSION}): "
            f"{first[:80]!r}"
        )
    columns = lines[1][2:].split()
    need = (
        "be_name",
        "srv_id",
        "srv_name",
        "srv_addr",
        "srv_admin_state",
        "srv_port",
        "srv_fqdn",
        "srvrecord",
    )
    missing = [c for c in need if c not in columns]
    if missing:
        raise RuntimeSyncError(
            f"backend {backend!r}: show servers state lacks column(s) {', '.join(missing)}"
        )
    slots = []
    for line in lines[2:]:
        if not line.strip():
            continue
        row = dict(zip(columns, line.split(), strict=False))  # a short row fails below
        if row.get("be_name") != backend:
            continue
        if row["srv_fqdn"] not in ("-", slot_fqdn(backend)) or row["srvrecord"] != "-":
            raise RuntimeSyncError(
                f"backend {backend!r}: server {row['srv_name']} is filled by DNS "
                f"(srv_fqdn {row['srv_fqdn']}, srvrecord {row['srvrecord']}); render the gateway "
                "with backend_source runtime"
            )
        try:
            slots.append(
                Slot(
                    int(row["srv_id"]),
                    row["srv_name"],
                    row["srv_addr"],
                    int(row["srv_port"]),
                    int(row["srv_admin_state"]),
                )
            )
        except (KeyError, ValueError) as e:
            raise RuntimeSyncError(f"backend {backend!r}: bad show servers state row {line!r}") from e
    if not slots:
        raise RuntimeSyncError(f"backend {backend!r}: no such backend, or it has no servers")
    return sorted(slots, key=lambda s: s.id)


def passing_instances(health, service: str) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """``(instances, unusable)`` of Consul's ``/v1/health/service/<service>?passing=true``
    answer: the distinct (address, port) of the instances, sorted by address (as a number)
    then port, an instance without an address of its own taking its node's; and the
    (instance ID, reason) of those that have no IP address or no port."""
    if not isinstance(health, list):
        raise RuntimeSyncError(f"service {service!r}: Consul's health answer is not a list")
    found, unusable = set(), []
    for entry in health:
        svc = (entry or {}).get("Service") or {}
        node = (entry or {}).get("Node") or {}
        ident = str(svc.get("ID") or svc.get("Service") or "?")
        address = svc.get("Address") or node.get("Address") or ""
        port = svc.get("Port")
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            unusable.append((ident, f"address {address!r} is not an IP address"))
            continue
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            unusable.append((ident, f"port {port!r} is not 1-65535"))
            continue
        found.add((ip, port))
    instances = [(str(ip), port) for ip, port in sorted(found, key=lambda a: (a[0].version, a[0], a[1]))]
    return instances, sorted(unusable)


def plan(backend: str, health, servers_state: str, service: str | None = None) -> Plan:
    """The runtime-API commands that make ``backend``'s slots hold exactly the passing
    instances of Consul's ``health`` answer (of ``service``, by default the backend's name),
    from HAProxy's ``servers_state`` (``show servers state <backend>``)."""
    instances, unusable = passing_instances(health, service or backend)
    slots = parse_servers_state(servers_state, backend)
    wanted = set(instances)
    held, emptied, commands = set(), [], []
    for slot in slots:
        if not slot.in_service:
            continue
        key = (slot.address, slot.port)
        if key in wanted and key not in held:
            held.add(key)
        else:
            emptied.append(slot)
            commands.append(f"set server {backend}/{slot.name} state maint")
    free = [s for s in slots if not s.in_service] + emptied
    overflow = []
    for address, port in instances:
        if (address, port) in held:
            continue
        same = next((s for s in free if (s.address, s.port) == (address, port) and s not in emptied), None)
        slot = same or (free[0] if free else None)
        if slot is None:
            overflow.append((address, port))
            continue
        free.remove(slot)
        if slot is not same:
            commands.append(f"set server {backend}/{slot.name} addr {address} port {port}")
        commands.append(f"set server {backend}/{slot.name} state ready")
    return Plan(tuple(commands), tuple(overflow), tuple(unusable))


def worker_pid(show_info: str) -> int:
    """The ``Pid:`` of ``show info``: the HAProxy worker answering the stats socket.

    A reload (``USR2`` to the master) starts a worker with another PID, from the servers' state
    saved just before; a command sent to the old worker after that save is not in it. The program
    compares PIDs to notice a reload and checks every backend again at once.
    """
    for line in show_info.splitlines():
        key, _sep, value = line.partition(":")
        if key == "Pid" and value.strip().isdigit():
            return int(value.strip())
    raise RuntimeSyncError(f"show info: no 'Pid:' line in {show_info[:200]!r}")


# The program's figures per backend: (key, Prometheus type, help).
METRICS = (
    ("answers_total", "counter", "Answers of Consul's health endpoint read for the backend's service."),
    ("commands_total", "counter", "Commands sent to HAProxy's runtime API for the backend."),
    ("errors_total", "counter", "Failed attempts at Consul or HAProxy for the backend, each retried."),
    ("passing_instances", "gauge", "Passing instances of the backend's service in Consul's last answer."),
)


def metrics_text(backends: dict, reloads: int) -> str:
    """The figures of ``cloud58-gateway-sync`` in the Prometheus text format:
    ``cloud58_gateway_sync_<key>{backend}`` per backend of ``backends`` ({backend: {key:
    value}}, in name order; a missing key is 0) for each key of :data:`METRICS`, then
    ``cloud58_gateway_sync_reloads_total``, the HAProxy reloads noticed."""
    lines = []
    for key, kind, help_text in METRICS:
        metric = f"cloud58_gateway_sync_{key}"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        for backend in sorted(backends):
            lines.append(f'{metric}{{backend="{backend}"}} {int(backends[backend].get(key, 0))}')
    lines += [
        "# HELP cloud58_gateway_sync_reloads_total HAProxy reloads noticed (a new worker PID).",
        "# TYPE cloud58_gateway_sync_reloads_total counter",
        f"cloud58_gateway_sync_reloads_total {int(reloads)}",
    ]
    return "\n".join(lines) + "\n"
