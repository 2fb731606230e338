# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The configuration file of ``cloud58-consul-sync`` from the role ``consul_sync``'s variables (pure).

:func:`sync_config` checks the variables and returns the JSON object the program's
``load_config()`` reads: every field it knows, the token and the kubeconfig as the paths of the
files the role writes next to the configuration. A missing or empty required variable fails
with one line naming it; a secret's value (the token, the kubeconfig) is never in a message.
"""

from __future__ import annotations

from .catalog import DiscoveryError, check_settings

# the variables without which the sync cannot run (the secrets are checked, never shown)
REQUIRED = (
    "consul_sync_cluster",
    "consul_sync_datacenter",
    "consul_sync_consul_address",
    "consul_sync_token",
    "consul_sync_kubeconfig",
)
SECRETS = ("consul_sync_token", "consul_sync_kubeconfig")
# optional paths and the context: "" means none (null in the file)
OPTIONAL = ("context", "ca_file", "cert_file", "key_file")
# numeric fields: (least value, whole number)
NUMBERS = {
    "grace_s": (0, False),
    "debounce_ms": (0, True),
    "max_batch_ms": (1, True),
    "max_txn_per_s": (0.01, False),
    "retries": (1, True),
    "metrics_port": (0, True),
}
TOKEN_FILE = "consul-sync.token"
KUBECONFIG_FILE = "consul-sync.kubeconfig"


def sync_config(variables):
    """``variables``: the role's ``consul_sync_*`` variables (a dict). Returns the program's
    configuration; raises :class:`DiscoveryError` naming the first bad variable."""
    for name in REQUIRED:
        value = variables.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DiscoveryError(f"{name} is missing or empty")
        if name in SECRETS and not isinstance(value, str):
            raise DiscoveryError(f"{name} is not a string (a {type(value).__name__})")
    cluster, datacenter = variables["consul_sync_cluster"], variables["consul_sync_datacenter"]
    try:
        check_settings(cluster, datacenter)
    except DiscoveryError as e:
        raise DiscoveryError(f"consul_sync_{e}") from e
    address = variables["consul_sync_consul_address"]
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        raise DiscoveryError(f"consul_sync_consul_address: {address!r} is not an http:// or https:// URL")
    config_dir = variables.get("consul_sync_config_dir")
    if not isinstance(config_dir, str) or not config_dir.startswith("/"):
        raise DiscoveryError(f"consul_sync_config_dir: {config_dir!r} is not an absolute path")
    config_dir = config_dir.rstrip("/") or "/"
    config = {
        "cluster": cluster,
        "datacenter": datacenter,
        "consul_address": address,
        "token_file": f"{config_dir}/{TOKEN_FILE}",
        "kubeconfig": f"{config_dir}/{KUBECONFIG_FILE}",
    }
    metrics_address = variables.get("consul_sync_metrics_address")
    if not isinstance(metrics_address, str) or not metrics_address:
        raise DiscoveryError(f"consul_sync_metrics_address: {metrics_address!r} is not an address")
    config["metrics_address"] = metrics_address
    for field in OPTIONAL:
        name = f"consul_sync_{field}"
        value = variables.get(name) or None
        if value is not None and not isinstance(value, str):
            raise DiscoveryError(f"{name}: {value!r} is not a string")
        if value is not None and field != "context" and not value.startswith("/"):
            raise DiscoveryError(f"{name}: {value!r} is not an absolute path")
        config[field] = value
    if (config["cert_file"] is None) != (config["key_file"] is None):
        raise DiscoveryError("consul_sync_cert_file and consul_sync_key_file go together")
    tls = [f"consul_sync_{f}" for f in ("ca_file", "cert_file", "key_file") if config[f] is not None]
    if tls and not address.startswith("https://"):
        raise DiscoveryError(f"{', '.join(tls)} given but consul_sync_consul_address is not https://")
    for field, (least, whole) in NUMBERS.items():
        name = f"consul_sync_{field}"
        value = variables.get(name)
        if field == "metrics_port" and value is None:  # no /metrics
            config[field] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
            raise DiscoveryError(f"{name}: {value!r} is not a number of at least {least}")
        if whole and not isinstance(value, int):
            raise DiscoveryError(f"{name}: {value!r} is not a whole number")
        config[field] = value
    if config["metrics_port"] is not None and config["metrics_port"] > 65535:
        raise DiscoveryError(f"consul_sync_metrics_port: {config['metrics_port']!r} is above 65535")
    return dict(sorted(config.items()))
