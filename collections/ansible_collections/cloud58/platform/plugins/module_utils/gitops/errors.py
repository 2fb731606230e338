# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The domain exceptions of the GitOps engine.

Every message names where the problem is (file and field, cluster and context) and what
rule was broken, so that a person can act on it without reading a traceback.
"""

from __future__ import annotations

from ..kube.errors import GitOpsError


class ClusterDirError(GitOpsError):
    """A cluster directory (cluster.yml or a manifest) is not valid. Raised before any cluster is touched."""


class IdentityError(GitOpsError):
    """The kubeconfig context does not point at the cluster its directory describes."""


class PruneGuardError(GitOpsError):
    """A run would delete more than the guard allows."""


class KubeApiError(GitOpsError):
    """The API server answered with an error status."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class KubeUnreachable(GitOpsError):
    """The API server behind a context could not be reached, or stopped answering.

    ``sent`` is False when no connection could be opened (nothing of the request left this
    host), True when the request was sent and its answer was lost: a write may then have
    been applied or not.
    """

    def __init__(self, message: str, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class LockError(GitOpsError):
    """Another reconcile holds the cluster's lock (or this run lost it)."""
