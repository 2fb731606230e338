"""Integration-tier fixtures shared by every test module in this directory."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, config

from cloud58_lab import staticpods
from cloud58_lab.pki import CertificateAuthority


@pytest.fixture(scope="session", autouse=True)
def _no_static_pod_lab_leftovers():
    """A killed run leaves its podman hosts and network behind under fixed names: remove
    them before any test would trip over them (a lab whose creator still runs is kept)."""
    problems = staticpods.remove_leftovers()
    assert problems == [], f"could not remove the leftovers of an earlier static-pod lab run: {problems}"


@pytest.fixture
def c1_core(kube_clusters):
    """A CoreV1Api client of the ``c1`` apiserver of ``kube_clusters`` (its kubeconfig's context c1)."""
    return client.CoreV1Api(
        config.new_client_from_config(config_file=str(kube_clusters.kubeconfig), context="c1")
    )


@pytest.fixture
def unbound_kubeconfig(kube_clusters, tmp_path):
    """``make(context, common_name)``: the path of a kubeconfig for the apiserver of ``context``
    in ``kube_clusters`` whose user is a client certificate of that cluster's CA with
    ``common_name``, a user no RBAC binding names (its requests are refused, 403)."""

    def make(context: str, common_name: str):
        admin = config.new_client_from_config(config_file=str(kube_clusters.kubeconfig), context=context)
        server, ca = admin.configuration.host, admin.configuration.ssl_ca_cert
        admin.close()
        cert, key = (
            CertificateAuthority.load(kube_clusters[context].pki)
            .issue(common_name, client=True)
            .write(tmp_path, "unbound")
        )
        path = tmp_path / "unbound.kubeconfig"
        user = {"client-certificate": str(cert), "client-key": str(key)}
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": context, "cluster": {"server": server, "certificate-authority": ca}}
                    ],
                    "users": [{"name": "unbound", "user": user}],
                    "contexts": [{"name": context, "context": {"cluster": context, "user": "unbound"}}],
                    "current-context": context,
                }
            )
        )
        return path

    return make


def _wait_for(read, wanted, what):
    """Poll ``read()`` until it returns ``wanted``; fail with the last value after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        got = read()
        if got == wanted:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still {got!r}, expected {wanted!r}", pytrace=False)
        time.sleep(0.1)


@pytest.fixture
def wait_for():
    """``wait_for(read, wanted, what)``: poll ``read()`` until it returns ``wanted``; the test
    fails naming ``what`` and the last value after 30 s (a bound on a hang, not a timing
    assertion)."""
    return _wait_for
