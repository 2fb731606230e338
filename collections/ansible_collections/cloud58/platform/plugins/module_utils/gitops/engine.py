# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Reconcile cluster directories against their clusters, several clusters at once.

One cluster, in this order, nothing written before step 4:

1. switch to the cluster's kubeconfig context and prove it points at that cluster
   (identity object; refuse otherwise);
2. resolve every kind through discovery and check its scope;
3. LIST each kind once, limited to this cluster's labels, and decide per object:
   create, update (changed in Git, or drift: fields changed by hand) or unchanged, and
   what to prune (behind the guard);
   (before this LIST, a run that writes takes the cluster's lock, Lease
   ``kube-system/cloud58-reconcile``, see lease.py; check mode takes none);
4. write only what differs, by batches: CRDs (wait until Established) -> Namespaces ->
   cluster-scoped -> namespaced, server-side apply with field manager ``cloud58``
   (``dryRun=All`` in check mode);
5. prune in reverse order;
6. keep cluster.yml's ``node_annotations`` on the Nodes that exist (one LIST of the nodes,
   a merge patch of the differing annotations per node; see annotate.py), then optionally
   wait for rollouts.

So a no-op run makes one identity GET, one discovery GET per group-version and one LIST
per kind (and one of the nodes), however many objects there are, and still sees every hand
edit of a managed field. A cluster that fails or cannot be reached fails alone; the others finish.

The report says what was written, whatever fails: each outcome is recorded the moment its
answer arrives (not when its batch ends), an error inside one write (the server became
unreachable, a request timed out) is that object's failure, and once the server stops
answering, or the lock is lost, nothing more is sent: the objects not attempted are counted
in the cluster's error. A write whose answer was lost is reported as failed with
``maybe_written`` (it may have been applied) and makes the run ``changed``.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..kube.errors import GitOpsError
from ..kube.objects import (
    CLUSTER_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    GroupKind,
    ObjKey,
    object_key,
    selector_for,
    split_api_version,
    with_hash,
)
from ..kube.order import PHASE_CRD, batches, phase_of, rank_of
from .annotate import FIELD_MANAGER as NODE_FIELD_MANAGER
from .annotate import NodeChange, node_key, plan_node_annotations
from .clusterdir import ClusterDir, Manifest
from .decide import CREATE, UNCHANGED, UPDATE, decide, rollout_done, strip_server_fields, unified_diff
from .errors import KubeApiError, KubeUnreachable, LockError
from .identity import check_identity
from .kube import KubeClient, Resource
from .lease import DEFAULT_DURATION as LOCK_DURATION
from .lease import DEFAULT_TIMEOUT as LOCK_TIMEOUT
from .lease import ClusterLock
from .prune import plan_prune

# kube-apiserver's answer (HTTP 500) for a write that etcd lost while a member failed or a
# leader was elected: sent to the member that died, or proposed around the election. It may
# or may not have been committed; a server-side apply is idempotent, so it is sent again,
# after a pause, up to _ETCD_RETRIES times. Any other error is that object's failure at once.
_ETCD_TRANSIENT = re.compile(
    r": 500 (etcdserver: (request timed out|leader changed|too many requests)"
    r"|rpc error: code = Unavailable)"
)
_ETCD_RETRIES = 4
_ETCD_RETRY_PAUSE = 0.5  # seconds, times the attempt's number
_pause = time.sleep  # tests replace it

PRUNE = "prune"
GONE = "gone"  # a prune candidate someone else deleted first (404 on delete): not pruned by this run
FAILED = "failed"
PROTECTED = "protected"
ANNOTATE = "annotate"  # a Node's annotations were (or, in check mode, would be) patched
WRITES = frozenset({CREATE, UPDATE, PRUNE, ANNOTATE})
ROLLOUT_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_UNREACHABLE = "unreachable"


@dataclass
class RunOptions:
    """How a run behaves. ``None`` for prune/max_prune/allow_prune_kinds/wait_rollouts means
    "as the cluster's cluster.yml says"."""

    kubeconfig: str | None = None
    check_mode: bool = False
    diff: bool = False
    prune: bool | None = None
    max_prune: int | None = None
    allow_prune_kinds: list[str] | None = None
    bootstrap_identity: bool = False
    wait_rollouts: bool | None = None
    wait_timeout: float = 300.0
    crd_timeout: float = 60.0
    parallel: int = 8
    workers: int = 8
    request_timeout: float = 30.0
    lock_timeout: float = LOCK_TIMEOUT
    lock_duration: int = LOCK_DURATION


@dataclass
class ObjectResult:
    key: ObjKey
    action: str  # create / update / unchanged / prune / gone / protected / failed / annotate
    source: str = ""
    reason: str = ""
    fields: list[str] = field(default_factory=list)
    error: str = ""
    diff: str = ""
    before: dict | None = None
    after: dict | None = None
    applied: str = ""  # failed after its write was applied (a rollout that did not finish): that write
    maybe_written: bool = False  # failed with the answer lost: the write may have been applied

    @property
    def write(self) -> str:
        """The write this outcome stands for (create/update/prune/annotate), or ""."""
        if self.action in WRITES:
            return self.action
        return self.applied

    def as_dict(self, with_diff: bool) -> dict:
        out = {
            "kind": self.key.kind,
            "group": self.key.group,
            "namespace": self.key.namespace,
            "name": self.key.name,
            "action": self.action,
        }
        for attr in ("source", "reason", "error", "applied"):
            if getattr(self, attr):
                out[attr] = getattr(self, attr)
        if self.maybe_written:
            out["maybe_written"] = True
        if self.fields:
            out["fields"] = list(self.fields)
        if with_diff and self.diff:
            out["diff"] = self.diff
        return out


@dataclass
class ClusterResult:
    cluster: str
    context: str
    check_mode: bool
    status: str = STATUS_OK
    error: str = ""
    notes: list[str] = field(default_factory=list)
    objects: list[ObjectResult] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    nodes_unchanged: int = 0  # nodes whose annotations are already as cluster.yml wants
    pending_nodes: list[str] = field(default_factory=list)  # nodes cluster.yml names, not registered
    identity_created: bool = False  # bootstrap_identity created the identity object

    def count(self, action: str) -> int:
        """Objects with this outcome; for a write (create, update, prune, annotate), also the
        objects that failed after that write was applied (a rollout that did not finish)."""
        if action in WRITES:
            return sum(1 for o in self.objects if o.write == action)
        return sum(1 for o in self.objects if o.action == action)

    @property
    def counts(self) -> dict:
        return {
            "created": self.count(CREATE),
            "updated": self.count(UPDATE),
            "unchanged": self.count(UNCHANGED),
            "pruned": self.count(PRUNE),
            "failed": self.count(FAILED),
            "prune_protected": self.count(PROTECTED),
            "already_gone": self.count(GONE),
            "maybe_written": sum(1 for o in self.objects if o.maybe_written),
            "nodes_annotated": self.count(ANNOTATE),
            "nodes_unchanged": self.nodes_unchanged,
            "nodes_pending": len(self.pending_nodes),
        }

    @property
    def changed(self) -> bool:
        """Something was written (in check mode: would be), or may have been (an answer lost)."""
        return self.identity_created or any(o.write or o.maybe_written for o in self.objects)

    def as_dict(self, with_diff: bool = False) -> dict:
        return {
            "cluster": self.cluster,
            "context": self.context,
            "check_mode": self.check_mode,
            "status": self.status,
            "error": self.error,
            "notes": list(self.notes),
            "changed": self.changed,
            "counts": self.counts,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "objects": [o.as_dict(with_diff) for o in self.objects if o.action != UNCHANGED],
            "pending_nodes": list(self.pending_nodes),
        }


def reconcile_clusters(
    clusters: list[ClusterDir], options: RunOptions, client_factory=None
) -> list[ClusterResult]:
    """Reconcile every cluster, ``options.parallel`` at a time. Never raises for one cluster's failure."""
    if not clusters:
        return []
    factory = client_factory or _default_factory(options)
    workers = max(1, min(options.parallel, len(clusters)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cluster") as pool:
        return list(pool.map(lambda c: reconcile_cluster(c, options, factory), clusters))


def reconcile_cluster(cluster: ClusterDir, options: RunOptions, client_factory) -> ClusterResult:
    result = ClusterResult(cluster=cluster.name, context=cluster.context, check_mode=options.check_mode)
    started = time.monotonic()
    client = reconciler = None
    try:
        client = client_factory(cluster.context)
        reconciler = _Reconciler(cluster, client, options, result)
        reconciler.run()
    except KubeUnreachable as e:
        result.status = STATUS_UNREACHABLE
        result.error = str(e)
    except GitOpsError as e:
        result.status = STATUS_FAILED
        result.error = str(e)
    except Exception as e:
        result.status = STATUS_FAILED
        result.error = f"cluster {cluster.name!r}: unexpected {type(e).__name__}: {e}"
    finally:
        if reconciler is not None:
            # Every outcome recorded so far, whatever stopped the run: the report and
            # ``changed`` say what was written.
            result.objects = reconciler.outcomes()
        if client is not None:
            result.requests = client.requests
            client.close()
        result.seconds = time.monotonic() - started
    if result.status == STATUS_OK and result.count(FAILED):
        result.status = STATUS_FAILED
        result.error = result.error or f"{result.count(FAILED)} object(s) failed"
    return result


def _default_factory(options: RunOptions):
    def factory(context: str) -> KubeClient:
        return KubeClient(
            context,
            options.kubeconfig,
            timeout=options.request_timeout,
            pool_size=max(4, options.workers * 2),
        )

    return factory


@dataclass
class _Item:
    manifest: Manifest
    desired: dict  # with the hash annotation
    resource: Resource | None = None
    live: dict | None = None
    outcome: ObjectResult | None = None


class _Reconciler:
    def __init__(self, cluster: ClusterDir, client: KubeClient, options: RunOptions, result: ClusterResult):
        self.cluster = cluster
        self.client = client
        self.options = options
        self.result = result
        self.check = options.check_mode
        self.prune = cluster.options["prune"] if options.prune is None else options.prune
        self.max_prune = cluster.options["max_prune"] if options.max_prune is None else options.max_prune
        allow = (
            cluster.options["allow_prune_kinds"]
            if options.allow_prune_kinds is None
            else options.allow_prune_kinds
        )
        self.allow_prune_kinds = frozenset(allow)
        wait = cluster.options["wait_rollouts"] if options.wait_rollouts is None else options.wait_rollouts
        self.wait_rollouts = bool(wait) and not self.check
        self.items: list[_Item] = []
        self.lock: ClusterLock | None = None
        self._versions: dict[GroupKind, str] = {}  # resourceVersion of each kind's LIST
        self._outcomes: dict[int, ObjectResult] = {}  # by the position of the object in the report
        self._seq = itertools.count()
        self._recorded = threading.Lock()
        self._halt: GitOpsError | None = None  # set when nothing more may be sent
        self._prunes_planned = 0
        self._prunes_answered = 0

    def outcomes(self) -> list[ObjectResult]:
        """Every outcome recorded so far, in report order (apply order, then prunes, then nodes)."""
        with self._recorded:
            return [self._outcomes[seq] for seq in sorted(self._outcomes)]

    def _record(self, seq: int, outcome: ObjectResult) -> ObjectResult:
        with self._recorded:
            self._outcomes[seq] = outcome
        return outcome

    # -- the steps ---------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except KubeUnreachable as e:
            self._stop(e)  # then the lock is not released: nothing more is sent
            raise
        finally:
            self._unlock()

    def _run(self) -> None:
        items = self.items = [
            _Item(m, with_hash(m.obj)) for m in sorted(self.cluster.manifests, key=lambda m: m.key)
        ]
        self._prove_identity(items)
        deferred = self._resolve(items)
        self._lock_cluster()  # before the LIST: what this run decides, no other run changes
        live = self._list_live(items)
        for item in items:
            item.live = live.get(item.manifest.key)
        decisions = {item.manifest.key: decide(item.manifest.key, item.desired, item.live) for item in items}
        prune_plan = None
        if self.prune:
            prune_plan = plan_prune(
                self.cluster.name,
                {item.manifest.key for item in items},
                live,
                allow_kinds=self.allow_prune_kinds,
                max_prune=self.max_prune,
                never=frozenset({self._identity_key}),
            )
        # Nothing has been written so far (except the lock and an explicitly bootstrapped identity).
        self._apply_all(items, decisions, deferred)
        failed = any(item.outcome.action == FAILED for item in items)
        if prune_plan is not None:
            for key in prune_plan.protected:
                self._record(
                    next(self._seq),
                    ObjectResult(
                        key,
                        PROTECTED,
                        reason=f"removed from Git; kept: {key.kind} is pruned only with allow_prune_kinds",
                    ),
                )
            if failed:
                self.result.notes.append("prune skipped: some objects failed to apply")
            else:
                self._prune(prune_plan.delete, live)
        elif not self.prune:
            self.result.notes.append("prune disabled")
        self._annotate_nodes()
        if self.wait_rollouts and not failed:
            self._wait_rollouts(items)

    # -- the lock ------------------------------------------------------------------------
    def _lock_cluster(self) -> None:
        """Take the cluster's lock (not in check mode: a dry run writes nothing)."""
        if self.check or self.lock is not None:
            return
        lock = ClusterLock(
            self.client,
            self.cluster.name,
            self.cluster.identity_namespace,
            timeout=self.options.lock_timeout,
            duration=self.options.lock_duration,
        )
        lock.acquire()
        self.lock = lock
        if lock.took_over:
            waited = f" (after watching it for {lock.waited:.0f}s)" if lock.waited >= 1 else ""
            self.result.notes.append(
                f"lock: took over {lock.where} from {lock.took_over!r}, which had stopped renewing it{waited}"
            )
        if lock.waited_for and lock.waited_for != lock.took_over:
            self.result.notes.append(
                f"lock: waited {lock.waited:.1f}s for another reconcile ({lock.waited_for!r}) to finish"
            )

    def _unlock(self) -> None:
        if self.lock is None:
            return
        problem = self.lock.release(reachable=not isinstance(self._halt, KubeUnreachable))
        if problem:
            self.result.notes.append(f"lock: {problem}")

    def _may_write(self) -> bool:
        """False once nothing more may be sent (the server stopped answering, the lock was lost)."""
        if self._halt is None and self.lock is not None and self.lock.lost:
            self._stop(LockError(f"cluster {self.cluster.name!r}: lost the lock: {self.lock.lost_reason}"))
        return self._halt is None

    def _stop(self, error: GitOpsError) -> None:
        with self._recorded:
            if self._halt is None:
                self._halt = error

    def _raise_if_halted(self) -> None:
        """After a batch: end the run when it had to stop, saying how far it got."""
        if self._halt is None:
            return
        outcomes = self.outcomes()
        written = sum(1 for o in outcomes if o.write)
        maybe = sum(1 for o in outcomes if o.maybe_written)
        pending = sum(1 for i in self.items if i.resource is not None and i.outcome is None)
        prunes = self._prunes_planned - self._prunes_answered
        progress = f"stopped writing after {written} write(s)"
        if maybe:
            progress += f" and {maybe} whose answer was lost"
        if pending:
            progress += f"; {pending} object(s) not attempted"
        if prunes:
            progress += f"; {prunes} prune(s) not attempted"
        error = self._halt
        message = f"{error}; {progress}"
        if isinstance(error, KubeUnreachable):
            raise KubeUnreachable(message, sent=error.sent)
        raise LockError(message)

    @property
    def _identity_key(self) -> ObjKey:
        return ObjKey("", "ConfigMap", self.cluster.identity_namespace, self.cluster.identity_name)

    def _prove_identity(self, items: list[_Item]) -> None:
        cluster = self.cluster
        where = f"ConfigMap {cluster.identity_namespace}/{cluster.identity_name}"
        configmaps = self.client.resource("v1", "ConfigMap")
        if configmaps is None:
            raise GitOpsError(f"cluster {cluster.name!r}: context {cluster.context!r} serves no v1 ConfigMap")
        found = self.client.get(configmaps, cluster.identity_namespace, cluster.identity_name)
        if found is None and self.options.bootstrap_identity:
            identity = self._identity_object(items)
            self._lock_cluster()  # the first write of this run
            self.client.create(configmaps, identity, dry_run=self.check)
            verb = "would create" if self.check else "created"
            self.result.notes.append(f"identity bootstrapped: {verb} {where}")
            if self.check:
                return
            self.result.identity_created = True
            found = self.client.get(configmaps, cluster.identity_namespace, cluster.identity_name)
        check_identity(cluster.name, cluster.context, cluster.identity, found, where=where)

    def _identity_object(self, items: list[_Item]) -> dict:
        cluster = self.cluster
        for item in items:
            if item.manifest.key == self._identity_key:
                return item.desired
        return with_hash(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": cluster.identity_name,
                    "namespace": cluster.identity_namespace,
                    "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, CLUSTER_LABEL: cluster.name},
                },
                "data": dict(cluster.identity),
            }
        )

    def _resolve(self, items: list[_Item]) -> set[GroupKind]:
        """Attach the API resource of every item; returns kinds a CRD of this run will serve."""
        crd_kinds = {}
        for item in items:
            obj = item.manifest.obj
            if item.manifest.key.kind == "CustomResourceDefinition":
                spec = obj.get("spec") or {}
                kind = (spec.get("names") or {}).get("kind")
                if spec.get("group") and kind:
                    crd_kinds[GroupKind(spec["group"], kind)] = spec.get("scope") == "Namespaced"
        deferred = set()
        for item in items:
            key = item.manifest.key
            res = self.client.resource(item.manifest.api_version, key.kind)
            if res is None:
                if key.group_kind in crd_kinds:
                    deferred.add(key.group_kind)
                    continue
                raise GitOpsError(
                    f"{item.manifest.source}: cluster {self.cluster.name!r} serves no {key.kind} in "
                    f"{item.manifest.api_version} (and no CRD in this directory defines it)"
                )
            self._check_scope(item, res)
            item.resource = res
        return deferred

    def _check_scope(self, item: _Item, res: Resource) -> None:
        namespace = item.manifest.key.namespace
        if res.namespaced and not namespace:
            raise GitOpsError(
                f"{item.manifest.source}: {res.kind} is namespaced; field 'metadata.namespace' is missing"
            )
        if not res.namespaced and namespace:
            raise GitOpsError(
                f"{item.manifest.source}: {res.kind} is cluster-scoped; remove 'metadata.namespace'"
            )

    def _list_live(self, items: list[_Item]) -> dict[ObjKey, dict]:
        kinds: dict[GroupKind, Resource] = {}
        for item in items:
            if item.resource is not None:
                kinds.setdefault(item.manifest.key.group_kind, item.resource)
        if self.prune:
            for api_version, kind in self.cluster.prune_kinds:
                group, _version = split_api_version(api_version)
                if GroupKind(group, kind) in kinds:
                    continue
                res = self.client.resource(api_version, kind)
                if res is not None:
                    kinds[GroupKind(group, kind)] = res
        selector = selector_for(self.cluster.name)
        live: dict[ObjKey, dict] = {}
        ordered = [kinds[gk] for gk in sorted(kinds)]
        for res, (objects, version) in zip(
            ordered, self._map(lambda res: self.client.snapshot(res, selector), ordered), strict=True
        ):
            self._versions[GroupKind(res.group, res.kind)] = version
            for obj in objects:
                live[object_key(obj)] = obj
        return live

    # -- writes --------------------------------------------------------------------------
    def _apply_all(self, items: list[_Item], decisions: dict, deferred: set[GroupKind]) -> None:
        crds = [
            i
            for i in items
            if i.resource is not None and phase_of(i.resource.group, i.resource.kind, False) == PHASE_CRD
        ]
        self._apply_batch(crds, decisions)
        if deferred:
            self._after_crds(crds, items, deferred)
        rest = [i for i in items if i not in crds and i.resource is not None]
        for batch in batches(
            rest, lambda i: rank_of(i.resource.group, i.resource.kind, i.resource.namespaced)
        ):
            self._apply_batch(batch, decisions)
        for item in items:
            if item.outcome is None:  # a kind its CRD will serve, in check mode
                item.outcome = self._record(
                    next(self._seq),
                    ObjectResult(
                        item.manifest.key,
                        CREATE,
                        source=item.manifest.source,
                        reason="not validated: its CustomResourceDefinition is not established yet",
                    ),
                )

    def _after_crds(self, crds: list[_Item], items: list[_Item], deferred: set[GroupKind]) -> None:
        if self.check:
            return
        for item in crds:
            if item.outcome is not None and item.outcome.action == FAILED:
                continue
            self.client.wait_established(item.resource, item.manifest.key.name, self.options.crd_timeout)
        for item in items:
            if item.resource is None and item.manifest.key.group_kind in deferred:
                res = self._resolve_after_crd(item)
                self._check_scope(item, res)
                item.resource = res

    def _resolve_after_crd(self, item: _Item) -> Resource:
        deadline = time.monotonic() + self.options.crd_timeout
        while True:
            res = self.client.resource(item.manifest.api_version, item.manifest.key.kind, refresh=True)
            if res is not None:
                return res
            if time.monotonic() > deadline:
                raise GitOpsError(
                    f"{item.manifest.source}: {item.manifest.key.kind} in {item.manifest.api_version} is "
                    f"still not served {self.options.crd_timeout:.0f}s after its CRD was established"
                )
            time.sleep(0.2)

    def _apply_batch(self, batch: list[_Item], decisions: dict) -> None:
        todo = []
        for item in batch:
            decision = decisions[item.manifest.key]
            if decision.action == UNCHANGED:
                item.outcome = self._record(
                    next(self._seq), ObjectResult(item.manifest.key, UNCHANGED, source=item.manifest.source)
                )
            else:
                todo.append((next(self._seq), item, decision))
        self._map(lambda job: self._apply_one(*job), todo)
        self._raise_if_halted()

    def _apply_one(self, seq: int, item: _Item, decision) -> None:
        """One server-side apply; its outcome is recorded as soon as it is known. Never raises:
        every error is that object's failure; one that means the server stopped answering
        also stops the run's writes."""
        if not self._may_write():
            return  # not attempted
        key, source = item.manifest.key, item.manifest.source
        resent = 0
        while True:
            try:
                created, after = self.client.apply(
                    item.resource, item.desired, dry_run=self.check, full=self.options.diff
                )
                break
            except KubeApiError as e:
                if resent == _ETCD_RETRIES or not _ETCD_TRANSIENT.search(str(e)) or not self._may_write():
                    item.outcome = self._record(seq, self._failure(key, source, e))
                    return
                resent += 1
                _pause(_ETCD_RETRY_PAUSE * resent)
            except Exception as e:
                item.outcome = self._record(seq, self._failure(key, source, e))
                return
        # Sent again after a lost write: "existed" may be this run's own first attempt.
        action = CREATE if created or (resent and decision.action == CREATE) else UPDATE
        reason = decision.reason
        if decision.action == CREATE and not created and not resent:
            reason = self._why_it_existed(item)
        outcome = ObjectResult(key, action, source=source, reason=reason, fields=decision.fields)
        if self.options.diff:
            outcome.diff = unified_diff(key, item.live, after)
            outcome.before = strip_server_fields(item.live)
            outcome.after = strip_server_fields(after)
        item.outcome = self._record(seq, outcome)

    def _failure(self, key: ObjKey, source: str, error: Exception, reason: str = "") -> ObjectResult:
        """The outcome of a write that raised ``error``; stops the run's writes when the server
        stopped answering."""
        where = f"{source}: " if source else ""
        if isinstance(error, KubeUnreachable):
            self._stop(error)
            maybe = error.sent and not self.check
            text = f"{where}{error}"
            if maybe:
                text += " (the request was sent and its answer lost: it may have been applied)"
            return ObjectResult(key, FAILED, source=source, reason=reason, error=text, maybe_written=maybe)
        if isinstance(error, GitOpsError):
            return ObjectResult(key, FAILED, source=source, reason=reason, error=f"{where}{error}")
        text = f"{where}unexpected {type(error).__name__}: {error}"
        return ObjectResult(key, FAILED, source=source, reason=reason, error=text)

    def _why_it_existed(self, item: _Item) -> str:
        """An object this run decided to create answered "existed": was it there at this run's
        LIST without this cluster's labels (adopted), or created since by another writer?"""
        key = item.manifest.key
        version = self._versions.get(key.group_kind, "")
        try:
            existed = self.client.existed_at(item.resource, key.namespace, key.name, version)
        except GitOpsError:
            existed = None
        if existed:
            return "adopted: existed without this cluster's labels"
        if existed is False:
            return "created by another writer after this run listed the cluster; applied over it"
        return (
            "existed although this run's LIST did not show it "
            "(without this cluster's labels, or created since)"
        )

    def _prune(self, doomed: list[ObjKey], live: dict[ObjKey, dict]) -> None:
        resources = {}
        for key in doomed:
            obj = live[key]
            res = self.client.resource(obj["apiVersion"], key.kind)
            resources[key] = res
        ranked = batches(doomed, lambda k: rank_of(k.group, k.kind, resources[k].namespaced))
        self._prunes_planned = len(doomed)
        for batch in reversed(ranked):
            jobs = [(next(self._seq), k) for k in batch]
            self._map(lambda job: self._prune_one(job[0], job[1], resources[job[1]], live[job[1]]), jobs)
            self._raise_if_halted()

    def _prune_one(self, seq: int, key: ObjKey, res: Resource, obj: dict) -> None:
        if not self._may_write():
            return
        uid = (obj.get("metadata") or {}).get("uid", "")
        try:
            deleted = self.client.delete(res, key.namespace, key.name, uid=uid, dry_run=self.check)
        except Exception as e:
            self._record(seq, self._failure(key, "", e, reason="prune"))
            return
        finally:
            with self._recorded:
                self._prunes_answered += 1
        if not deleted:
            gone = ObjectResult(key, GONE, reason="removed from Git; already deleted by someone else")
            self._record(seq, gone)
            return
        outcome = ObjectResult(key, PRUNE, reason="removed from Git")
        if self.options.diff:
            outcome.diff = unified_diff(key, obj, None)
            outcome.before = strip_server_fields(obj)
        self._record(seq, outcome)

    def _annotate_nodes(self) -> None:
        """cluster.yml's node annotations onto the Nodes that exist; never creates a Node."""
        wanted = self.cluster.node_annotations
        if not wanted:
            return
        nodes = self.client.resource("v1", "Node")
        if nodes is None:
            raise GitOpsError(
                f"cluster {self.cluster.name!r}: context {self.cluster.context!r} serves no v1 Node"
            )
        plan = plan_node_annotations(wanted, self.client.list(nodes, metadata_only=True))
        self.result.nodes_unchanged = len(plan.unchanged)
        self.result.pending_nodes = sorted(plan.pending)  # reported even if the patches do not finish
        jobs = [(next(self._seq), c) for c in plan.changes]
        gone = [name for name in self._map(lambda job: self._annotate_one(nodes, *job), jobs) if name]
        self.result.pending_nodes = sorted([*plan.pending, *gone])  # deleted since the LIST: pending
        self._raise_if_halted()

    def _annotate_one(self, nodes: Resource, seq: int, change: NodeChange) -> str:
        """Patch one node's annotations; returns its name when it was deleted since the LIST."""
        if not self._may_write():
            return ""
        key = node_key(change.name)
        source = f"{self.cluster.name}/cluster.yml node_annotations"
        try:
            self.client.merge_patch(
                nodes, "", change.name, change.patch, dry_run=self.check, field_manager=NODE_FIELD_MANAGER
            )
        except Exception as e:
            if getattr(e, "status", 0) == 404:
                return change.name
            self._record(seq, self._failure(key, source, e))
            return ""
        outcome = ObjectResult(
            key,
            ANNOTATE,
            source=source,
            reason="annotations differ",
            fields=[f"metadata.annotations.{k}" for k in change.changed],
        )
        if self.options.diff:
            outcome.before = change.as_object(change.before)
            outcome.after = change.as_object(change.after)
            outcome.diff = unified_diff(key, outcome.before, outcome.after)
        self._record(seq, outcome)
        return ""

    def _wait_rollouts(self, items: list[_Item]) -> None:
        watched = [
            i for i in items if i.manifest.key.kind in ROLLOUT_KINDS and i.outcome.action in (CREATE, UPDATE)
        ]
        deadline = time.monotonic() + self.options.wait_timeout
        pending = list(watched)
        while pending:
            still = []
            for item in pending:
                key = item.manifest.key
                obj = self.client.get(item.resource, key.namespace, key.name)
                if obj is None or not rollout_done(obj):
                    still.append(item)
            pending = still
            if not pending:
                break
            if time.monotonic() > deadline:
                for item in pending:
                    item.outcome.applied = item.outcome.action  # written all the same
                    item.outcome.action = FAILED
                    item.outcome.error = (
                        f"{item.manifest.source}: rollout not complete after {self.options.wait_timeout:.0f}s"
                    )
                return
            time.sleep(1.0)
        if watched:
            self.result.notes.append(f"{len(watched)} rollout(s) complete")

    # -- helpers -------------------------------------------------------------------------
    def _map(self, func, items: list) -> list:
        """``func`` over ``items`` with up to ``workers`` requests in flight; results in order.

        Every call runs to its end even when another raises (its outcome is then recorded);
        the first exception is raised once all have finished."""
        if len(items) <= 1 or self.options.workers <= 1:
            return [func(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.options.workers, len(items))) as pool:
            futures = [pool.submit(func, item) for item in items]
        results, error = [], None
        for future in futures:
            try:
                results.append(future.result())
            except Exception as e:
                error = error or e
                results.append(None)
        if error is not None:
            raise error
        return results
