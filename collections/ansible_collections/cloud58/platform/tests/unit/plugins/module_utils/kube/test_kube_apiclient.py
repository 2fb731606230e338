"""The node agents' kubeconfig reading: what load_kubeconfig makes of each shape, and each refusal.

The requests themselves run against a real kube-apiserver in tests/integration/
test_netshaper_watch.py and test_overload_agent.py.
"""

from __future__ import annotations

import http.client

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient
from ansible_collections.cloud58.platform.plugins.module_utils.kube.apiclient import (
    Connection,
    KubeconfigError,
    load_kubeconfig,
)


def _kubeconfig(server="https://198.18.0.11:6443", user=None, cluster=None, current="c1"):
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [{"name": "k8s", "cluster": {"server": server, **(cluster or {})}}],
        "users": [
            {
                "name": "agent",
                "user": user if user is not None else {"client-certificate": "a.crt", "client-key": "a.key"},
            }
        ],
        "contexts": [
            {"name": "c1", "context": {"cluster": "k8s", "user": "agent"}},
            {"name": "c2", "context": {"cluster": "k8s"}},
        ],
    }


@pytest.mark.parametrize(
    ("doc", "context", "expected"),
    [
        pytest.param(
            _kubeconfig(cluster={"certificate-authority": "/etc/kubernetes/pki/ca.crt"}),
            None,
            Connection(
                host="198.18.0.11",
                port=6443,
                ca_file="/etc/kubernetes/pki/ca.crt",
                cert_file="/etc/cloud58/a.crt",
                key_file="/etc/cloud58/a.key",
            ),
            id="paths-relative-to-the-kubeconfig",
        ),
        pytest.param(
            _kubeconfig(
                server="https://api.example:8443/prefix/",
                user={"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"},
                cluster={"certificate-authority-data": "Y2E="},
            ),
            None,
            Connection(
                host="api.example",
                port=8443,
                prefix="/prefix",
                ca_data=b"ca",
                cert_data=b"cert",
                key_data=b"key",
            ),
            id="inline-data-and-a-path-prefix",
        ),
        pytest.param(
            _kubeconfig(
                server="https://api.example",
                user={"token": "s3cret"},
                cluster={"insecure-skip-tls-verify": True},
            ),
            None,
            Connection(host="api.example", port=443, token="s3cret", insecure=True),
            id="token-default-port",
        ),
        pytest.param(
            _kubeconfig(), "c2", Connection(host="198.18.0.11", port=6443), id="context-without-a-user"
        ),
    ],
)
def test_load_kubeconfig(doc, context, expected):
    assert load_kubeconfig(doc, context, "/etc/cloud58") == expected


@pytest.mark.parametrize(
    ("doc", "context", "message"),
    [
        pytest.param(
            ["not", "a", "mapping"],
            None,
            "not a kubeconfig (a YAML mapping with clusters, users, contexts)",
            id="list",
        ),
        pytest.param(
            _kubeconfig(current=""), None, "current-context: none set, and no context given", id="no-context"
        ),
        pytest.param(_kubeconfig(), "c3", "contexts: no entry named 'c3'", id="unknown-context"),
        pytest.param(
            _kubeconfig(server="http://198.18.0.11:8080"),
            None,
            "clusters.k8s.server: 'http://198.18.0.11:8080' is not an https:// URL",
            id="plain-http",
        ),
        pytest.param(
            _kubeconfig(user={"exec": {"command": "aws"}}),
            None,
            "users.agent.exec: not supported here (client certificates or a token)",
            id="exec-plugin",
        ),
        pytest.param(
            _kubeconfig(cluster={"certificate-authority-data": "%%%"}),
            None,
            "certificate-authority-data: not base64",
            id="bad-base64",
        ),
    ],
)
def test_a_kubeconfig_it_cannot_use_is_refused_by_field(doc, context, message):
    with pytest.raises(KubeconfigError) as e:
        load_kubeconfig(doc, context, "/etc/cloud58")
    assert str(e.value) == message


class _CutShort:
    """An HTTPSConnection whose answer (``status``) breaks off after ``b'{"ki'``."""

    def __init__(self, status):
        self.status, self.closed = status, False

    def __call__(self, *_args, **_kwargs):
        return self

    def request(self, *_args, **_kwargs):
        pass

    def getresponse(self):
        return self

    reason = "OK"

    def read(self):
        raise http.client.IncompleteRead(b'{"ki', 20)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("status", [200, 503])
def test_an_answer_cut_short_is_a_connection_error(monkeypatch, status):
    """Callers retry on OSError; http.client's IncompleteRead is not one, so the client turns it
    into ConnectionError, for a good answer and for an error's body alike."""
    connection = _CutShort(status)
    monkeypatch.setattr(apiclient.http.client, "HTTPSConnection", connection)
    client = apiclient.Client(Connection(host="198.18.0.11", port=6443, insecure=True))
    with pytest.raises(ConnectionError) as info:
        client.get("/api/v1/nodes")
    assert (str(info.value), connection.closed) == (
        "IncompleteRead: IncompleteRead(4 bytes read, 20 more expected)",
        True,
    )
