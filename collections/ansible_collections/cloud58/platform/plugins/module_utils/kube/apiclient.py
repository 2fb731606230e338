# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""A small HTTPS client of the Kubernetes API for the node agents: the standard library only.

The node agents (cloud58-netshaper, cloud58-overload, cloud58-crashkeeper, cloud58-loadannotator)
make a handful of calls: list and watch the pods of their node, read a Node, patch it and its
status, watch Events, patch a Pod's status. The Python Kubernetes client
does the same with every model of the API loaded: a Python process that imports Debian's
``python3-kubernetes`` peaks at 51.8 MiB, one with ``ssl``, ``http.client``, ``json``,
``threading``, ``http.server`` and ``subprocess`` at 17.7 MiB (measured on Debian 12; issue 16
asks for < 50 MiB per idle agent).

``load_kubeconfig(doc, context, base_dir)`` is pure: it turns a parsed kubeconfig into a
``Connection`` (server, CA, client pair or token), naming the field that is missing or
unsupported. ``Client`` sends requests over one ``http.client.HTTPSConnection`` at a time:
``get``/``patch`` return the decoded JSON object; ``watch`` yields the watch's events, one
JSON object per line. A status other than 2xx raises ``ApiError`` with the status and the
API server's message; a connection that fails raises ``OSError`` (``ConnectionError`` for a
protocol error of ``http.client``).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from dataclasses import dataclass

# Patch types the API server takes (Content-Type of a PATCH).
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class KubeconfigError(ValueError):
    """A kubeconfig this client cannot use; names the file's field and the value."""


class ApiError(Exception):
    """The API server answered with a status other than 2xx."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}" + (f": {message}" if message else ""))
        self.status, self.reason, self.message = status, reason, message


@dataclass(frozen=True)
class Connection:
    """Where the API server is and who we are: paths or PEM bytes (``*_data``), or a token."""

    host: str
    port: int
    prefix: str = ""
    ca_file: str | None = None
    ca_data: bytes | None = None
    cert_file: str | None = None
    cert_data: bytes | None = None
    key_file: str | None = None
    key_data: bytes | None = None
    token: str | None = None
    insecure: bool = False


def _named(doc: dict, kind: str, name: str) -> dict:
    for entry in doc.get(kind) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(kind[:-1]) or {}
    raise KubeconfigError(f"{kind}: no entry named {name!r}")


def _path(value: str, base_dir: str) -> str:
    return value if os.path.isabs(value) else os.path.join(base_dir, value)


def _data(value, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise KubeconfigError(f"{field}: not base64") from None


def load_kubeconfig(doc: dict, context: str | None, base_dir: str) -> Connection:
    """The Connection of ``context`` (default: current-context) of the kubeconfig ``doc``
    (parsed YAML); relative paths are taken from ``base_dir``, the kubeconfig's directory."""
    if not isinstance(doc, dict):
        raise KubeconfigError("not a kubeconfig (a YAML mapping with clusters, users, contexts)")
    name = context or doc.get("current-context")
    if not name:
        raise KubeconfigError("current-context: none set, and no context given")
    ctx = _named(doc, "contexts", name)
    cluster = _named(doc, "clusters", ctx.get("cluster", ""))
    user = _named(doc, "users", ctx.get("user", "")) if ctx.get("user") else {}
    for field in ("exec", "auth-provider", "username"):
        if field in user:
            raise KubeconfigError(
                f"users.{ctx.get('user')}.{field}: not supported here (client certificates or a token)"
            )
    url = urllib.parse.urlsplit(str(cluster.get("server", "")))
    if url.scheme != "https" or not url.hostname:
        raise KubeconfigError(
            f"clusters.{ctx.get('cluster')}.server: {cluster.get('server')!r} is not an https:// URL"
        )
    token = user.get("token")
    if user.get("tokenFile"):
        with open(_path(user["tokenFile"], base_dir), encoding="ascii") as f:
            token = f.read().strip()
    return Connection(
        host=url.hostname,
        port=url.port or 443,
        prefix=url.path.rstrip("/"),
        ca_file=_path(cluster["certificate-authority"], base_dir)
        if cluster.get("certificate-authority")
        else None,
        ca_data=_data(cluster["certificate-authority-data"], "certificate-authority-data")
        if cluster.get("certificate-authority-data")
        else None,
        cert_file=_path(user["client-certificate"], base_dir) if user.get("client-certificate") else None,
        cert_data=_data(user["client-certificate-data"], "client-certificate-data")
        if user.get("client-certificate-data")
        else None,
        key_file=_path(user["client-key"], base_dir) if user.get("client-key") else None,
        key_data=_data(user["client-key-data"], "client-key-data") if user.get("client-key-data") else None,
        token=token,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


def ssl_context(conn: Connection) -> ssl.SSLContext:
    """The TLS context of ``conn``: its CA (else the system's), its client pair if any."""
    context = ssl.create_default_context(
        cafile=conn.ca_file, cadata=conn.ca_data.decode() if conn.ca_data else None
    )
    if conn.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if conn.cert_file or conn.cert_data:
        if conn.cert_data or conn.key_data:  # load_cert_chain reads files: a private directory for a moment
            with tempfile.TemporaryDirectory(prefix="cloud58-kube-") as tmp:
                cert = _write(tmp, "client.crt", conn.cert_data) if conn.cert_data else conn.cert_file
                key = _write(tmp, "client.key", conn.key_data) if conn.key_data else conn.key_file
                context.load_cert_chain(cert, key)
        else:
            context.load_cert_chain(conn.cert_file, conn.key_file)
    return context


def _write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(data)
    return path


def _read(connection, response) -> bytes:
    """The answer's body; an answer cut short (``http.client.IncompleteRead``, an HTTPException
    and not an OSError) is a failed connection too, as the module docstring promises."""
    try:
        return response.read()
    except http.client.HTTPException as e:
        connection.close()
        raise ConnectionError(f"{type(e).__name__}: {e}") from None


class Client:
    """Requests to one API server (see the module docstring)."""

    def __init__(self, conn: Connection, timeout: float = 30.0) -> None:
        self.conn, self.timeout = conn, timeout
        self.context = ssl_context(conn)

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None) -> Client:
        import yaml  # Debian's python3-yaml; only reading a kubeconfig needs it

        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise KubeconfigError(f"not YAML: {str(e).splitlines()[0]}") from None
        return cls(load_kubeconfig(doc, context, os.path.dirname(os.path.abspath(path))))

    def _open(
        self,
        method: str,
        path: str,
        query: dict | None,
        *,
        body=None,
        content_type: str = MERGE,
        timeout: float,
    ):
        target = self.conn.prefix + path + ("?" + urllib.parse.urlencode(query) if query else "")
        connection = http.client.HTTPSConnection(
            self.conn.host, self.conn.port, context=self.context, timeout=timeout
        )
        headers = {"Accept": "application/json"}
        if self.conn.token:
            headers["Authorization"] = f"Bearer {self.conn.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            connection.request(method, target, body=data, headers=headers)
            response = connection.getresponse()
        except http.client.HTTPException as e:  # a protocol error is a failed connection here
            connection.close()
            raise ConnectionError(f"{type(e).__name__}: {e}") from None
        if not 200 <= response.status < 300:
            text = _read(connection, response).decode("utf-8", "replace")
            connection.close()
            try:
                message = json.loads(text).get("message", "")
            except (ValueError, AttributeError):
                message = text.strip()[:200]
            raise ApiError(response.status, response.reason, message)
        return connection, response

    def request(
        self, method: str, path: str, query: dict | None = None, body=None, content_type: str = MERGE
    ) -> dict:
        connection, response = self._open(
            method, path, query, body=body, content_type=content_type, timeout=self.timeout
        )
        try:
            return json.loads(_read(connection, response))
        finally:
            connection.close()

    def get(self, path: str, query: dict | None = None) -> dict:
        return self.request("GET", path, query)

    def patch(self, path: str, body: dict, content_type: str = STRATEGIC_MERGE) -> dict:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def watch(self, path: str, query: dict, timeout_seconds: int):
        """The events of a watch of ``path`` (``watch=1`` added), until the server ends it."""
        query = {**query, "watch": "1", "timeoutSeconds": str(timeout_seconds)}
        connection, response = self._open("GET", path, query, timeout=timeout_seconds + self.timeout)
        try:
            for line in response:
                if line.strip():
                    yield json.loads(line)
        except http.client.HTTPException as e:  # the stream cut mid-chunk
            raise ConnectionError(f"{type(e).__name__}: {e}") from None
        finally:
            connection.close()
