"""The engine's HTTP client against a scripted local HTTP server: what it retries and what it reports."""

from __future__ import annotations

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

        do_GET = do_PATCH = _answer

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
