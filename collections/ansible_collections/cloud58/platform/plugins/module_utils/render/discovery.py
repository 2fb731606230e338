# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""An app's ``consul:`` section: the Service annotations cloud58-consul-sync selects on, and the
check that needs every app at once.

``consul: {service, version}`` registers the app's Service in Consul as ``service`` (a DNS
label). The renderer annotates the Service with ``consul.cloud58.io/service``, with
``consul.cloud58.io/port: http`` (the app's port, named even when the Service has a single
port, so that a VIP port added later changes nothing) and, when set,
``consul.cloud58.io/version``. One Consul service belongs to one app: the sync would keep the
first claim of a cluster and refuse the others. Every message names the file, the app and the
Consul service.
"""

from __future__ import annotations

from ..discovery.catalog import ANNOTATION_PORT, ANNOTATION_SERVICE, ANNOTATION_VERSION

# The name of the app's own Service port (render/apps.py), the one registered.
SERVICE_PORT_NAME = "http"


def consul_label(spec_or_raw) -> str:
    """``app <name>, Consul service <service>`` of a spec (or a raw document), for messages."""
    raw = spec_or_raw if isinstance(spec_or_raw, dict) else {}
    consul = raw.get("consul")
    if not isinstance(consul, dict):
        return f"app {raw.get('name')}"
    return f"app {raw.get('name')}, Consul service {consul.get('service')}"


def consul_annotations(consul: dict) -> dict:
    """The Service annotations of a ``consul:`` section (defaults filled)."""
    out = {ANNOTATION_SERVICE: consul["service"], ANNOTATION_PORT: SERVICE_PORT_NAME}
    if consul.get("version") is not None:
        out[ANNOTATION_VERSION] = consul["version"]
    return out


def consul_spec_problems(rel: str, spec: dict) -> list[str]:
    """Rules of one spec's ``consul:`` that need no other app (the schema has passed)."""
    if spec.get("consul") is None or spec["service"]["enabled"]:
        return []
    return [
        f"{rel}: consul: {consul_label(spec)}: service.enabled is false; cloud58-consul-sync registers "
        "the endpoints of the app's Service (rule: consul-needs-service)"
    ]


def consul_claim_problems(specs: list[tuple[str, dict]]) -> list[str]:
    """Two apps claiming one Consul service: the second one named, with the first."""
    problems, owner = [], {}
    for rel, spec in specs:
        consul = spec.get("consul")
        if consul is None:
            continue
        first = owner.setdefault(consul["service"], (rel, spec["name"]))
        if first != (rel, spec["name"]):
            problems.append(
                f"{rel}: consul.service: {consul_label(spec)}: already claimed by app {first[1]} "
                f"({first[0]}); a Consul service belongs to one app (rule: one-app-per-consul-service)"
            )
    return problems
