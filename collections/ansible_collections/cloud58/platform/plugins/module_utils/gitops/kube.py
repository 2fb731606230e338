# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The only module of the engine that talks to an API server.

The kubeconfig is read by the kubernetes Python client (contexts, exec plugins, embedded
certificates); requests go over ``transport.py`` (kept-alive HTTP/1.1 connections, a
fraction of the client's CPU per request) with plain JSON bodies: a LIST of a thousand
Deployments is parsed once as JSON instead of being turned into a thousand model objects,
and discovery asks only for the group-versions a run uses. Writes are server-side applies
with field manager ``cloud58`` (``force``: Git is the source of truth), and ``dryRun=All``
in check mode.

Every call counts itself in ``requests`` so the engine can report how many a run made.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from ..kube.errors import GitOpsError
from ..kube.objects import FIELD_MANAGER, split_api_version
from .errors import KubeApiError, KubeUnreachable
from .transport import ConnectError, Endpoint, Transport, tls_context

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - reported by the module through missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = e

try:
    from cryptography import x509 as _x509

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - the expiry check is then left to the API server (401)
    HAS_CRYPTOGRAPHY = False

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
_STATUS_RETRIES = 5  # answers that carry Retry-After (the server's own "try again in 1s")
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_RETRY_AFTER_METHODS = frozenset({"GET", "DELETE"})  # never an apply or a create
_RETRY_AFTER_MAX = 10.0  # seconds; a longer wait asked for is cut to this
_CONNECT_RETRY_PAUSE = 0.2
_sleep = time.sleep  # tests replace it
MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
DEFAULT_KUBECONFIG = "~/.kube/config"


def kubeconfig_source(kubeconfig: str | None, environ=None) -> tuple[str, str]:
    """(the kubeconfig path(s) to read, how to name them in a message).

    As kubectl: the explicit file, else ``$KUBECONFIG`` (one or more paths), else
    ``~/.kube/config``. Resolved at each call, so the file named in an error is the one read.
    """
    environ = os.environ if environ is None else environ
    if kubeconfig:
        return kubeconfig, kubeconfig
    from_env = environ.get("KUBECONFIG", "")
    if from_env:
        return from_env, f"{from_env} (from $KUBECONFIG)"
    return os.path.expanduser(DEFAULT_KUBECONFIG), DEFAULT_KUBECONFIG


def client_certificate_problem(pem: bytes, now: datetime.datetime | None = None) -> str:
    """Why a client certificate (PEM) would be refused by date, or "" (also when unreadable:
    loading it for TLS then says what is wrong)."""
    if not HAS_CRYPTOGRAPHY:
        return ""
    try:
        cert = _x509.load_pem_x509_certificate(pem)
    except ValueError:
        return ""
    now = now or datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - modules may run on Python < 3.11
    subject = cert.subject.rfc4514_string() or "(empty subject)"
    not_before, not_after = _validity(cert)
    if not_after < now:
        return f"the client certificate ({subject}) expired at {_stamp(not_after)}"
    if not_before > now:
        return f"the client certificate ({subject}) is not valid before {_stamp(not_before)}"
    return ""


def _validity(cert) -> tuple[datetime.datetime, datetime.datetime]:
    """notBefore and notAfter as aware datetimes (cryptography < 42 has only naive UTC ones)."""
    if hasattr(cert, "not_valid_after_utc"):
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    utc = datetime.timezone.utc  # noqa: UP017
    return cert.not_valid_before.replace(tzinfo=utc), cert.not_valid_after.replace(tzinfo=utc)


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base


class KubeClient:
    """One API server reached through one kubeconfig context. Safe to share between threads."""

    def __init__(
        self, context: str, kubeconfig: str | None = None, *, timeout: float = 30.0, pool_size: int = 16
    ):
        if not HAS_KUBERNETES:
            raise GitOpsError(f"the Python library kubernetes is required: {KUBERNETES_IMPORT_ERROR}")
        self.context = context
        configuration = k8s_client.Configuration()
        config_file, where = kubeconfig_source(kubeconfig)
        try:
            k8s_config.load_kube_config(
                config_file=config_file,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError) as e:
            raise GitOpsError(f"context {context!r}: cannot load it from kubeconfig {where}: {e}") from e
        self.host = configuration.host
        if configuration.cert_file:
            try:
                with open(configuration.cert_file, "rb") as handle:
                    problem = client_certificate_problem(handle.read())
            except OSError:
                problem = ""  # loading it for TLS below names the file
            if problem:
                raise GitOpsError(
                    f"context {context!r} of kubeconfig {where}: {problem}; the API server would refuse "
                    f"it, so nothing was sent. Renew the certificate (or the kubeconfig) and run again"
                )
        try:
            endpoint = Endpoint.from_url(
                configuration.host,
                ssl_context=_tls(configuration) if configuration.host.startswith("https:") else None,
                server_hostname=configuration.tls_server_name or None,
                proxy_url=configuration.proxy or None,
            )
        except (ValueError, OSError) as e:
            raise GitOpsError(f"context {context!r}: {e}") from e
        self._configuration = configuration
        self._transport = Transport(endpoint, timeout=timeout, max_idle=pool_size)
        self._lock = threading.Lock()
        self._discovery: dict[str, dict | None] = {}
        self.requests = 0

    def close(self) -> None:
        self._transport.close()

    # -- transport -------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, query=None, body=None, content_type: str | None = None, accept=None
    ):
        """(status, parsed JSON body or None). Raises KubeApiError for an error status.

        An answer 429 or 503 with Retry-After (a CRD whose storage is still starting says
        "try again in 1s") is waited for and asked again, up to 5 times, for GET and DELETE
        only: an apply or a create is never repeated on the server's say-so.
        """
        headers = {"Accept": accept or "application/json", "User-Agent": f"{FIELD_MANAGER}-gitops"}
        token = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = token
        payload = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            payload = json.dumps(body, separators=(",", ":")).encode()
        target = f"{path}?{urlencode(list(query))}" if query else path
        with self._lock:
            self.requests += 1
        for attempt in range(_STATUS_RETRIES + 1):
            response = self._send(method, target, headers, payload)
            wait = response.headers.get("retry-after")
            if (
                wait is None
                or attempt == _STATUS_RETRIES
                or method not in _RETRY_AFTER_METHODS
                or response.status not in _RETRY_AFTER_STATUSES
            ):
                break
            _sleep(_retry_after_seconds(wait))
        data = _decode(response.body)
        if response.status == 401:
            raise KubeApiError(
                f"context {self.context!r}: the API server {self.host} refused this context's credentials "
                f"({method} {path}: 401 Unauthorized): check its client certificate or token",
                status=401,
                reason="Unauthorized",
            )
        if not 200 <= response.status < 300:
            message = data.get("message") if isinstance(data, dict) else (data or "")
            raise KubeApiError(
                f"{method} {path}: {response.status} {message or response.reason}",
                status=response.status,
                reason=(data or {}).get("reason", "") if isinstance(data, dict) else "",
            )
        return response.status, data

    def _send(self, method: str, target: str, headers: dict, payload: bytes | None):
        """One answer, or KubeUnreachable. A connection that could not be opened is tried once
        more; a request that was sent is not (a read that timed out is an error, and the
        KubeUnreachable says ``sent``: a write may or may not have been applied)."""
        sent = False
        for attempt in (1, 2):
            try:
                return self._transport.request(method, target, headers, payload)
            except ConnectError as e:
                error = e
                if attempt == 1:
                    _sleep(_CONNECT_RETRY_PAUSE)
            except OSError as e:
                error, sent = e, True
                break
        raise KubeUnreachable(
            f"context {self.context!r}: API server {self.host} unreachable: {_reason(error)}", sent=sent
        )

    # -- discovery -------------------------------------------------------------------
    def resources(self, api_version: str, *, refresh: bool = False) -> dict | None:
        """Kind -> Resource for one group-version, or None when the server does not serve it."""
        with self._lock:
            if not refresh and api_version in self._discovery:
                return self._discovery[api_version]
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            _status, data = self.request("GET", path)
        except KubeApiError as e:
            if e.status != 404:
                raise
            found = None
        else:
            found = {}
            for item in data.get("resources", []):
                if "/" in item["name"]:
                    continue  # subresources (status, scale, ...)
                found[item["kind"]] = Resource(
                    group, version, item["kind"], item["name"], bool(item["namespaced"])
                )
        with self._lock:
            self._discovery[api_version] = found
        return found

    def resource(self, api_version: str, kind: str, *, refresh: bool = False) -> Resource | None:
        served = self.resources(api_version, refresh=refresh)
        return None if served is None else served.get(kind)

    # -- reads -----------------------------------------------------------------------
    def get(self, res: Resource, namespace: str, name: str) -> dict | None:
        try:
            _status, data = self.request("GET", res.path(namespace, name))
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise
        return data

    def list(self, res: Resource, label_selector: str = "", *, metadata_only: bool = False) -> list[dict]:
        """Every object of a kind carrying the labels (all of them without a selector), across
        namespaces: one request. ``metadata_only``: the server sends metadata only."""
        return self.snapshot(res, label_selector, metadata_only=metadata_only)[0]

    def snapshot(
        self, res: Resource, label_selector: str = "", *, metadata_only: bool = False
    ) -> tuple[list[dict], str]:
        """``list`` and the resourceVersion the answer is a snapshot of ("" if not given)."""
        query = [("labelSelector", label_selector)] if label_selector else []
        _status, data = self.request(
            "GET", res.path(), query=query, accept=METADATA_LIST if metadata_only else None
        )
        items = data.get("items") or []
        for item in items:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return items, str((data.get("metadata") or {}).get("resourceVersion") or "")

    def existed_at(self, res: Resource, namespace: str, name: str, resource_version: str) -> bool | None:
        """Whether the object existed (with any labels) at ``resource_version`` (from ``snapshot``),
        read from the server's history; None when that history is gone (compacted) or unreadable."""
        if not resource_version:
            return None
        query = [
            ("fieldSelector", f"metadata.name={name}"),
            ("resourceVersion", resource_version),
            ("resourceVersionMatch", "Exact"),
        ]
        try:
            _status, data = self.request("GET", res.path(namespace), query=query, accept=METADATA_LIST)
        except KubeApiError:
            return None
        return bool((data or {}).get("items"))

    # -- writes ----------------------------------------------------------------------
    def apply(self, res: Resource, obj: dict, *, dry_run: bool, full: bool = True) -> tuple[bool, dict]:
        """Server-side apply; (created, the object as the server stored or would store it).

        With ``full=False`` the server answers with the metadata only (less to encode and
        to parse when nobody looks at the result, e.g. without diff mode).
        """
        meta = obj["metadata"]
        # fieldValidation=Ignore spares the API server a second, strict YAML decode of every
        # apply, which only looks for duplicate keys: a body serialised from a dict has
        # none (duplicates in Git files are refused when loading). Unknown fields still
        # fail, in the typed conversion of server-side apply ("field not declared in schema").
        query = [("fieldManager", FIELD_MANAGER), ("force", "true"), ("fieldValidation", "Ignore")]
        if dry_run:
            query.append(("dryRun", "All"))
        status, data = self.request(
            "PATCH",
            res.path(meta.get("namespace", ""), meta["name"]),
            query=query,
            body=obj,
            content_type=APPLY_CONTENT_TYPE,
            accept=None if full else METADATA_ONLY,
        )
        return status == 201, data

    def merge_patch(
        self, res: Resource, namespace: str, name: str, patch: dict, *, dry_run: bool, field_manager: str
    ) -> dict:
        """JSON merge patch of an existing object: a missing one is a 404, never created."""
        query = [("fieldManager", field_manager)]
        if dry_run:
            query.append(("dryRun", "All"))
        _status, data = self.request(
            "PATCH", res.path(namespace, name), query=query, body=patch, content_type=MERGE_PATCH_CONTENT_TYPE
        )
        return data

    def create(self, res: Resource, obj: dict, *, dry_run: bool) -> dict:
        """Create only; an existing object makes this fail with 409 and is never overwritten."""
        query = [("fieldManager", FIELD_MANAGER)]
        if dry_run:
            query.append(("dryRun", "All"))
        _status, data = self.request(
            "POST", res.path(obj["metadata"].get("namespace", "")), query=query, body=obj
        )
        return data

    def replace(self, res: Resource, obj: dict) -> dict:
        """PUT: replace an object at its ``metadata.resourceVersion`` (409 when it changed since)."""
        meta = obj["metadata"]
        _status, data = self.request(
            "PUT",
            res.path(meta.get("namespace", ""), meta["name"]),
            query=[("fieldManager", FIELD_MANAGER)],
            body=obj,
        )
        return data

    def delete(self, res: Resource, namespace: str, name: str, *, uid: str, dry_run: bool) -> bool:
        """Delete the object with this uid only (a re-created namesake is left alone).

        True when the server deleted it (or would, in a dry run), False when it was already gone (404)."""
        # With a body the API server reads every option from it and ignores the query
        # string, so dryRun must be in the body too.
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        if dry_run:
            body["dryRun"] = ["All"]
        try:
            self.request("DELETE", res.path(namespace, name), body=body)
        except KubeApiError as e:
            if e.status != 404:
                raise
            return False
        return True

    # -- waits -----------------------------------------------------------------------
    def wait_established(self, res: Resource, name: str, timeout: float) -> None:
        """Wait until a CustomResourceDefinition reports condition Established=True."""
        deadline = time.monotonic() + timeout
        while True:
            crd = self.get(res, "", name) or {}
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise KubeApiError(f"CustomResourceDefinition {name} not Established after {timeout:.0f}s")
            time.sleep(0.2)


def _decode(raw: bytes):
    """JSON bodies as data; anything else (``404 page not found`` for an unknown group) as text."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace").strip()


def _reason(error) -> str:
    return str(error) or type(error).__name__


def _retry_after_seconds(value: str) -> float:
    """Retry-After in seconds (the API server sends whole seconds); anything else waits 1s."""
    try:
        seconds = float(value)
    except ValueError:
        return 1.0
    return min(max(seconds, 0.0), _RETRY_AFTER_MAX)


def _tls(configuration):
    """The TLS settings of a kubeconfig context, as the kubernetes client loaded them."""
    return tls_context(
        verify=bool(configuration.verify_ssl),
        ca_file=configuration.ssl_ca_cert or None,
        ca_data=getattr(configuration, "ca_cert_data", None) or None,
        cert_file=configuration.cert_file or None,
        key_file=configuration.key_file or None,
        check_hostname=configuration.assert_hostname is not False,
    )
