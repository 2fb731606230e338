# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The ports of the programs that each host of a datacenter serves on a port of its own
inventory, while the datacenter's Prometheus scrapes one port per job (pure).

For each such job: the host variable that sets the port, the role that owns it and that
role's default (a unit test reads the roles' ``defaults/main.yml`` against this table).
``site.yml`` takes a job's port from its hosts with :func:`agreed_port`; its preflight
(``playbooks/validate.yml``) refuses hosts of one datacenter that disagree, with the message
of :func:`port_problem`, before any host changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from .scrape import MonitoringError


@dataclass(frozen=True)
class ProgramPort:
    variable: str
    role: str
    default: int
    hosts: str  # what the hosts are, in a message
    scraped: str  # what Prometheus scrapes on them, in a message


PROGRAM_PORTS = {
    "lvs": ProgramPort("lvs_director_exporter_port", "lvs_director", 9110, "LVS directors", "them all"),
    "lvs-sync": ProgramPort(
        "lvs_director_sync_metrics_port", "lvs_director", 9658, "LVS directors", "their cloud58-lvs-sync"
    ),
    "consul-sync": ProgramPort(
        "consul_sync_metrics_port", "consul_sync", 9664, "consul sync hosts", "their cloud58-consul-sync"
    ),
    "gateway-sync": ProgramPort(
        "haproxy_gateway_sync_metrics_port",
        "haproxy_gateway",
        9665,
        "ingress gateways",
        "their cloud58-gateway-sync",
    ),
}


def _program(job) -> ProgramPort:
    if job not in PROGRAM_PORTS:
        raise MonitoringError(f"job {job!r} has no per-host port; known: {', '.join(PROGRAM_PORTS)}")
    return PROGRAM_PORTS[job]


def host_ports(job, hosts, host_vars: Mapping) -> dict:
    """{host: port} of ``job`` on ``hosts``: each host's variable, else the role's default.
    A value that is no port 0-65535 (0: the program serves no counters) is an error naming
    the host, the variable and the value."""
    program = _program(job)
    ports = {}
    for host in hosts:
        value = (host_vars.get(host) or {}).get(program.variable, program.default)
        try:
            port = int(str(value), 10)
        except ValueError:
            port = -1
        if isinstance(value, bool) or not 0 <= port <= 65535:
            raise MonitoringError(f"host {host}: {program.variable}: expected a port 0-65535, got {value!r}")
        ports[host] = port
    return ports


def agreed_port(job, hosts, host_vars: Mapping) -> int:
    """The one port of ``job`` on ``hosts`` (the role's default without hosts); hosts that
    disagree are an error, the message of :func:`port_problem`."""
    ports = host_ports(job, hosts, host_vars)
    if len(set(ports.values())) > 1:
        raise MonitoringError(_differs(job, "", ports))
    return next(iter(ports.values()), _program(job).default)


def port_problem(job, datacenter, hosts, host_vars: Mapping) -> str:
    """ "" when ``hosts`` (of ``datacenter``) serve ``job`` on one port, else one line naming
    the datacenter, the variable and each host's port."""
    ports = host_ports(job, hosts, host_vars)
    return _differs(job, datacenter, ports) if len(set(ports.values())) > 1 else ""


def _differs(job, datacenter, ports) -> str:
    program = PROGRAM_PORTS[job]
    where = f"datacenter {datacenter}: " if datacenter else ""
    # hosts by name: the same line whatever order the inventory gives them in
    listed = json.dumps(ports, sort_keys=True)
    return (
        f"{where}{program.variable} differs between its {program.hosts} ({listed}); "
        f"its Prometheus scrapes {program.scraped} on one port (job {job}): give them one value"
    )


def port_problems(plan, hosts_by_job: Mapping, host_vars: Mapping) -> list:
    """:func:`port_problem` of every datacenter of ``plan`` (by name) and job (in the order of
    PROGRAM_PORTS) whose hosts disagree; ``hosts_by_job``: {job: the hosts that run its
    program}, of any datacenter."""
    problems = []
    for datacenter in sorted(plan["datacenters"]):
        for job in PROGRAM_PORTS:
            hosts = [
                h
                for h in hosts_by_job.get(job) or []
                if (plan["hosts"].get(h) or {}).get("datacenter") == datacenter
            ]
            problem = port_problem(job, datacenter, hosts, host_vars)
            if problem:
                problems.append(problem)
    return problems
