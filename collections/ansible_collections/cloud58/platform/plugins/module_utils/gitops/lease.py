# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""One reconcile per cluster at a time: a coordination.k8s.io/v1 Lease held in the cluster.

A run that writes takes Lease ``<identity namespace>/cloud58-reconcile`` after proving the
cluster's identity and before its LIST, renews it while it runs and releases it at the end
(the holder is cleared; the object stays). A second run of the same cluster polls it: it
takes it as soon as it is free, takes it over when its holder stopped renewing it (a
crashed run), and otherwise refuses after ``lock_timeout`` seconds, naming the holder.
Check mode writes nothing and takes no lock.

The decision is ``lease_verdict`` (pure); ``ClusterLock`` does the requests. Every update
carries the resourceVersion it read, so two runs racing for a free lease cannot both win:
the loser gets 409 and reads again.
"""

from __future__ import annotations

import datetime
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass

from ..kube.objects import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from .errors import KubeApiError, KubeUnreachable, LockError
from .kube import Resource

LEASE_NAME = "cloud58-reconcile"
LEASES = Resource("coordination.k8s.io", "v1", "Lease", "leases", True)
DEFAULT_DURATION = 30  # seconds a holder stays the holder without renewing
DEFAULT_TIMEOUT = 120.0  # seconds a run waits for another one's lock

FREE = "free"  # nobody holds it (never held, or released)
MINE = "mine"  # this run holds it
STALE = "stale"  # its holder stopped renewing it: take it over
HELD = "held"  # another run holds it: wait


@dataclass(frozen=True)
class Verdict:
    state: str
    holder: str = ""
    expires_in: float = 0.0  # HELD: seconds until the holder's renewal is overdue, by our clock
    renewed_ago: float = 0.0  # seconds since the holder's last renewal, by our clock


def holder_identity() -> str:
    """Who holds the lock: host, process and a token of this run (two runs of one process differ)."""
    return f"{socket.gethostname()} pid {os.getpid()} run {secrets.token_hex(4)}"


def parse_time(value) -> datetime.datetime | None:
    """A Lease's MicroTime (``2025-01-02T03:04:05.123456Z``) as an aware datetime; None if absent or bad."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)  # noqa: UP017 - modules may run on Python < 3.11
    return moment


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: UP017


def lease_verdict(
    spec: dict | None, me: str, now: datetime.datetime, *, unchanged_for: float = 0.0
) -> Verdict:
    """What a run that wants the lock does with a Lease's ``spec`` (None: no Lease yet).

    The holder's renewTime is compared with this host's clock, with one lease duration of
    allowance for clocks that disagree: a lease is stale when it was last renewed more than
    twice its duration ago. ``unchanged_for`` is how long this run has watched the same
    record (holder and renewTime) without a change: a whole duration of that is stale too,
    whatever the clocks say (the holder would have renewed it).
    """
    spec = spec or {}
    holder = spec.get("holderIdentity") or ""
    if not holder:
        return Verdict(FREE)
    if holder == me:
        return Verdict(MINE, holder)
    duration = float(spec.get("leaseDurationSeconds") or DEFAULT_DURATION)
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    if renewed is None:
        return Verdict(STALE, holder)  # held by nobody we could ever see renewing it
    ago = (now - renewed).total_seconds()
    if ago > 2 * duration or unchanged_for >= duration:
        return Verdict(STALE, holder, renewed_ago=ago)
    expires_in = max(0.0, min(2 * duration - ago, duration - unchanged_for))
    return Verdict(HELD, holder, expires_in=expires_in, renewed_ago=max(0.0, ago))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017


class ClusterLock:
    """The lock of one cluster, through a KubeClient: ``acquire()``, then ``release()``.

    While held, a daemon thread renews it every third of its duration; ``lost`` is set (with
    ``lost_reason``) when the lease was taken by another run or could not be renewed within
    its duration, and the engine then stops writing.
    """

    def __init__(
        self,
        client,
        cluster: str,
        namespace: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        duration: int = DEFAULT_DURATION,
        identity: str | None = None,
        poll: float = 1.0,
        clock=_now,
        sleep=time.sleep,
        monotonic=time.monotonic,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.namespace = namespace
        self.timeout = timeout
        self.duration = max(1, int(duration))
        self.identity = identity or holder_identity()
        self.poll = poll
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self.where = f"Lease {namespace}/{LEASE_NAME}"
        self.held = False
        self.lost = False
        self.lost_reason = ""
        self.waited = 0.0
        self.waited_for = ""  # the holder this run waited for, if it had to wait
        self.took_over = ""  # the stale holder this run took the lock from
        self._lease: dict | None = None  # as last written by this run
        self._last_renewal = 0.0  # monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()  # guards _lease, held, _last_renewal
        self._io = threading.Lock()  # one lease update in flight: a release never races a renewal

    # -- acquire -------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock, waiting up to ``timeout`` for another run; LockError when it stays held."""
        started = self._monotonic()
        seen, seen_since = None, started
        while True:
            lease = self.client.get(LEASES, self.namespace, LEASE_NAME)
            spec = (lease or {}).get("spec") or {}
            record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            mono = self._monotonic()
            if record != seen:
                seen, seen_since = record, mono
            verdict = lease_verdict(
                spec if lease else None, self.identity, self._clock(), unchanged_for=mono - seen_since
            )
            if verdict.state in (FREE, STALE, MINE):
                if self._take(lease, verdict):
                    self.waited = self._monotonic() - started
                    self._start_renewing()
                    return
                continue  # someone else changed it first: read it again
            waited = mono - started
            self.waited_for = verdict.holder
            if waited >= self.timeout:
                raise LockError(
                    f"cluster {self.cluster!r}: another reconcile holds the lock ({self.where}): "
                    f"holder {verdict.holder!r}, renewed {verdict.renewed_ago:.0f}s ago; waited "
                    f"{waited:.0f}s (lock_timeout); refusing to write, nothing was written. Run again "
                    f"when it has finished"
                )
            self._sleep(max(0.05, min(self.poll, verdict.expires_in, self.timeout - waited)))

    def _take(self, lease: dict | None, verdict: Verdict) -> bool:
        """Write this run as the holder; False when another writer got there first (409)."""
        now = format_time(self._clock())
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "acquireTime": now,
            "renewTime": now,
        }
        try:
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": LEASE_NAME,
                        "namespace": self.namespace,
                        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                    },
                    "spec": {**spec, "leaseTransitions": 0},
                }
                written = self.client.create(LEASES, body, dry_run=False)
            else:
                old = lease.get("spec") or {}
                transitions = int(old.get("leaseTransitions") or 0)
                if verdict.state != MINE and old.get("holderIdentity") != self.identity:
                    transitions += 1
                body = {**lease, "spec": {**old, **spec, "leaseTransitions": transitions}}
                written = self.client.replace(LEASES, body)
        except KubeApiError as e:
            if e.status == 409:
                return False
            raise
        if verdict.state == STALE:
            self.took_over = verdict.holder
        with self._mutex:
            self._lease = written
            self._last_renewal = self._monotonic()
            self.held = True
        return True

    # -- renew ---------------------------------------------------------------------------
    def _start_renewing(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.cluster}", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        interval = self.duration / 3.0
        while not self._stop.wait(interval):
            self.renew()
            if self.lost:
                return

    def renew(self) -> None:
        """Push renewTime forward; marks the lock lost when another run took it, or when it
        could not be renewed for a whole duration (others may take it over from then on)."""
        with self._io:
            with self._mutex:
                lease = self._lease
            if lease is None or self.lost:
                return
            spec = {**(lease.get("spec") or {}), "renewTime": format_time(self._clock())}
            try:
                written = self.client.replace(LEASES, {**lease, "spec": spec})
            except KubeApiError as e:
                if e.status in (404, 409):
                    self._lose(f"{self.where} was taken or removed by someone else ({e})")
                    return
                self._overdue(e)
                return
            except KubeUnreachable as e:
                self._overdue(e)
                return
            with self._mutex:
                self._lease = written
                self._last_renewal = self._monotonic()

    def _overdue(self, error) -> None:
        if self._monotonic() - self._last_renewal >= self.duration:
            self._lose(f"{self.where} could not be renewed for {self.duration}s: {error}")

    def _lose(self, reason: str) -> None:
        self.lost_reason = reason
        self.lost = True

    # -- release -------------------------------------------------------------------------
    def release(self, *, reachable: bool = True) -> str:
        """Clear the holder. Returns "" when done, else why not (the lease then expires by
        itself). ``reachable=False`` (the server stopped answering) sends nothing."""
        self._stop.set()
        if not reachable:
            with self._mutex:
                was_held, self._lease, self.held = self._lease is not None, None, False
            if was_held and not self.lost:
                return f"{self.where} not released (the API server is unreachable); it expires by itself"
            return self.lost_reason
        with self._io:  # waits for a renewal in flight (bounded by the request timeout)
            with self._mutex:
                lease, self._lease = self._lease, None
                self.held = False
            if lease is None or self.lost:
                return self.lost_reason
            spec = {k: v for k, v in (lease.get("spec") or {}).items() if k != "holderIdentity"}
            try:
                self.client.replace(LEASES, {**lease, "spec": spec})
            except (KubeApiError, KubeUnreachable) as e:
                return f"{self.where} not released ({e}); it expires by itself"
        return ""
