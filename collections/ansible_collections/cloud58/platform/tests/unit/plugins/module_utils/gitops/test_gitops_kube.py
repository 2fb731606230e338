"""The engine's HTTP client against a scripted local HTTP server: what it retries and what it reports."""

from __future__ import annotations

import datetime
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.gitops import kube
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.errors import (
    KubeApiError,
    KubeUnreachable,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.kube import KubeClient, Resource
from ansible_collections.cloud58.platform.plugins.module_utils.kube.errors import GitOpsError

IPPOOLS = Resource("crd.projectcalico.org", "v1", "IPPool", "ippools", False)
EMPTY_LIST = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPoolList", "items": []}
INITIALIZING = {
    "kind": "Status",
    "code": 429,
    "reason": "TooManyRequests",
    "message": "storage is (re)initializing",
}


def write_kubeconfig(directory, server: str):
    """A kubeconfig with one context ``t``: ``server``, bearer token ``x``."""
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "t", "cluster": {"server": server}}],
                "users": [{"name": "t", "user": {"token": "x"}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
                "current-context": "t",
            }
        )
    )
    return kubeconfig


@pytest.fixture
def api(tmp_path, monkeypatch):
    """``api(answers)``: a KubeClient whose server answers GET/PATCH with ``answers`` in turn
    (the last one repeats); ``api.seen`` lists the requests, ``api.slept`` the client's waits."""
    state = {"answers": [], "seen": [], "auth": []}
    slept: list[float] = []
    monkeypatch.setattr(kube, "_sleep", slept.append)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            state["seen"].append(f"{self.command} {self.path}")
            state["auth"].append(self.headers.get("Authorization"))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            answers = state["answers"]
            status, body = answers.pop(0) if len(answers) > 1 else answers[0]
            data = json.dumps(body).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_DELETE = do_PUT = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = write_kubeconfig(tmp_path, f"http://127.0.0.1:{server.server_port}")
    clients = []

    def make(answers):
        state["answers"] = list(answers)
        client = KubeClient("t", str(kubeconfig))
        client.seen = state["seen"]
        client.auth = state["auth"]
        client.slept = slept
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    server.shutdown()
    server.server_close()


def test_a_list_the_server_asks_to_retry_is_retried_after_its_retry_after(api):
    client = api([(429, INITIALIZING), (429, INITIALIZING), (200, EMPTY_LIST)])
    assert client.list(IPPOOLS, "a=b") == []
    assert client.seen == ["GET /apis/crd.projectcalico.org/v1/ippools?labelSelector=a%3Db"] * 3
    assert client.slept == [1.0, 1.0]
    assert client.requests == 1
    assert client.auth == ["Bearer x"] * 3


def test_a_server_that_keeps_asking_to_retry_is_an_api_error_not_unreachable(api):
    client = api([(429, INITIALIZING)])
    with pytest.raises(KubeApiError) as info:
        client.list(IPPOOLS, "a=b")
    assert (info.value.status, str(info.value)) == (
        429,
        "GET /apis/crd.projectcalico.org/v1/ippools: 429 storage is (re)initializing",
    )
    assert len(client.seen) == 6  # the first answer and five retries


def test_an_apply_is_never_repeated_by_the_transport(api):
    client = api([(429, INITIALIZING)])
    obj = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": "p"}}
    with pytest.raises(KubeApiError) as info:
        client.apply(IPPOOLS, obj, dry_run=False)
    assert info.value.status == 429
    assert client.seen == [
        "PATCH /apis/crd.projectcalico.org/v1/ippools/p"
        "?fieldManager=cloud58&force=true&fieldValidation=Ignore"
    ]


def test_an_api_server_nobody_answers_on_is_unreachable_after_one_more_connect(tmp_path, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(kube, "_sleep", slept.append)
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    kubeconfig = write_kubeconfig(tmp_path, f"http://127.0.0.1:{port}")
    client = KubeClient("t", str(kubeconfig))
    with pytest.raises(KubeUnreachable) as info:
        client.list(IPPOOLS, "a=b")
    assert str(info.value) == (
        f"context 't': API server http://127.0.0.1:{port} unreachable: [Errno 111] Connection refused"
    )
    assert (slept, client.requests) == ([0.2], 1)


@pytest.mark.parametrize(("status", "deleted"), [(200, True), (404, False)], ids=["deleted", "already-gone"])
def test_delete_tells_a_deletion_from_an_object_already_gone(api, status, deleted):
    client = api([(status, {"kind": "Status", "code": status, "message": "x"})])
    assert client.delete(IPPOOLS, "", "p", uid="u1", dry_run=False) is deleted


def test_existed_at_reads_the_list_at_that_exact_resource_version(api):
    client = api([(200, {"kind": "IPPoolList", "metadata": {"resourceVersion": "9"}, "items": [{"x": 1}]})])
    assert client.existed_at(IPPOOLS, "", "p", "41") is True
    assert client.seen == [
        "GET /apis/crd.projectcalico.org/v1/ippools"
        "?fieldSelector=metadata.name%3Dp&resourceVersion=41&resourceVersionMatch=Exact"
    ]
    gone = api([(410, {"kind": "Status", "code": 410, "message": "too old resource version"})])
    assert gone.existed_at(IPPOOLS, "", "p", "41") is None
    assert gone.existed_at(IPPOOLS, "", "p", "") is None


def test_snapshot_returns_the_items_and_the_resource_version_of_the_list(api):
    client = api([(200, {**EMPTY_LIST, "metadata": {"resourceVersion": "77"}})])
    assert client.snapshot(IPPOOLS, "a=b") == ([], "77")


def test_credentials_the_server_refuses_are_named_as_such(api):
    client = api([(401, {"kind": "Status", "code": 401, "message": "Unauthorized"})])
    with pytest.raises(KubeApiError) as info:
        client.list(IPPOOLS)
    assert info.value.status == 401
    assert str(info.value) == (
        f"context 't': the API server {client.host} refused this context's credentials "
        "(GET /apis/crd.projectcalico.org/v1/ippools: 401 Unauthorized): "
        "check its client certificate or token"
    )


def test_a_request_sent_whose_answer_is_lost_is_unreachable_and_sent(tmp_path, monkeypatch):
    monkeypatch.setattr(kube, "_sleep", lambda _s: None)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def swallow():  # read the request, then close without an answer
        for _attempt in range(2):
            conn, _addr = server.accept()
            conn.recv(65536)
            conn.close()

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    client = KubeClient("t", str(write_kubeconfig(tmp_path, f"http://127.0.0.1:{port}")))
    obj = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": "p"}}
    with pytest.raises(KubeUnreachable) as info:
        client.apply(IPPOOLS, obj, dry_run=False)
    assert info.value.sent is True
    assert str(info.value) == (
        f"context 't': API server http://127.0.0.1:{port} unreachable: the server closed the connection"
    )
    client.close()
    server.close()


def test_a_server_nobody_listens_on_was_sent_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(kube, "_sleep", lambda _s: None)
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = KubeClient("t", str(write_kubeconfig(tmp_path, f"http://127.0.0.1:{port}")))
    with pytest.raises(KubeUnreachable) as info:
        client.list(IPPOOLS)
    assert info.value.sent is False


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        pytest.param("/etc/k.conf", "/from/env", ("/etc/k.conf", "/etc/k.conf"), id="explicit-wins"),
        pytest.param(
            None, "/a/one:/a/two", ("/a/one:/a/two", "/a/one:/a/two (from $KUBECONFIG)"), id="from-env"
        ),
        pytest.param(None, "", (None, "~/.kube/config"), id="default"),
    ],
)
def test_kubeconfig_source_is_the_file_really_read(explicit, env, expected, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    environ = {"KUBECONFIG": env} if env else {}
    path, where = kube.kubeconfig_source(explicit, environ)
    assert (path if expected[0] else None, where) == (expected[0], expected[1])
    if expected[0] is None:
        assert path == str(tmp_path / ".kube/config")


def test_a_context_missing_from_kubeconfig_names_the_file_from_kubeconfig_env(tmp_path, monkeypatch):
    kubeconfig = write_kubeconfig(tmp_path, "http://127.0.0.1:1")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(GitOpsError) as info:
        KubeClient("nope")
    assert str(info.value).startswith(
        f"context 'nope': cannot load it from kubeconfig {kubeconfig} (from $KUBECONFIG): "
    )
    monkeypatch.delenv("KUBECONFIG")
    with pytest.raises(GitOpsError) as info:
        KubeClient("nope")
    assert str(info.value).startswith("context 'nope': cannot load it from kubeconfig ~/.kube/config: ")


def _certificate(not_before, not_after):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloud58-admin")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


UTC = datetime.UTC
OLD = (datetime.datetime(2020, 1, 1, tzinfo=UTC), datetime.datetime(2021, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("not_before", "not_after", "problem"),
    [
        pytest.param(
            datetime.datetime(2020, 1, 1, tzinfo=UTC),
            datetime.datetime(2021, 1, 1, tzinfo=UTC),
            "the client certificate (CN=cloud58-admin) expired at 2021-01-01T00:00:00Z",
            id="expired",
        ),
        pytest.param(
            datetime.datetime(2099, 1, 1, tzinfo=UTC),
            datetime.datetime(2100, 1, 1, tzinfo=UTC),
            "the client certificate (CN=cloud58-admin) is not valid before 2099-01-01T00:00:00Z",
            id="not-yet-valid",
        ),
        pytest.param(
            datetime.datetime(2020, 1, 1, tzinfo=UTC),
            datetime.datetime(2100, 1, 1, tzinfo=UTC),
            "",
            id="valid",
        ),
    ],
)
def test_client_certificate_problem(not_before, not_after, problem):
    cert, _key = _certificate(not_before, not_after)
    assert kube.client_certificate_problem(cert) == problem
    assert kube.client_certificate_problem(b"not a certificate") == ""


def test_a_kubeconfig_with_an_expired_client_certificate_fails_before_any_request(tmp_path):
    import base64

    cert, key = _certificate(
        datetime.datetime(2020, 1, 1, tzinfo=UTC), datetime.datetime(2021, 1, 1, tzinfo=UTC)
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "t", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [
                    {
                        "name": "t",
                        "user": {
                            "client-certificate-data": base64.b64encode(cert).decode(),
                            "client-key-data": base64.b64encode(key).decode(),
                        },
                    }
                ],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
            }
        )
    )
    with pytest.raises(GitOpsError) as info:
        KubeClient("t", str(kubeconfig))
    assert str(info.value) == (
        f"context 't' of kubeconfig {kubeconfig}: the client certificate (CN=cloud58-admin) expired at "
        "2021-01-01T00:00:00Z; the API server would refuse it, so nothing was sent. Renew the certificate "
        "(or the kubeconfig) and run again"
    )
