# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Loading and validating ``clusters/<cluster>/``.

Everything here is read and checked before any cluster is contacted: a bad directory
fails with one message naming the file and the field, never a traceback. The layout, the
file names and the YAML reader are those of ``kube/clusters_format.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field

from ..kube.clusters_format import (
    CLUSTER_FILE,
    HAS_YAML,
    MANIFEST_SUFFIXES,
    load_yaml_documents,
    parse_yaml_documents,
)
from ..kube.objects import (
    CLUSTER_LABEL,
    CLUSTER_SCOPED_KINDS,
    IDENTITY_NAME,
    IDENTITY_NAMESPACE,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    NAMESPACED_KINDS,
    PROTECTED_KINDS,
    GroupKind,
    ObjKey,
    object_key,
    split_api_version,
)
from .errors import ClusterDirError

try:
    import yaml
except ImportError:  # pragma: no cover - load_cluster_dir checks HAS_YAML first
    yaml = None

_OPTION_DEFAULTS = {"prune": True, "max_prune": 20, "allow_prune_kinds": [], "wait_rollouts": False}


@dataclass(frozen=True)
class Manifest:
    source: str  # path relative to the clusters root, for messages
    obj: dict
    key: ObjKey

    @property
    def api_version(self) -> str:
        return self.obj["apiVersion"]


@dataclass
class ClusterDir:
    name: str
    path: str
    context: str
    datacenter: str
    identity: dict  # cluster / datacenter / uid
    identity_namespace: str
    identity_name: str
    options: dict
    prune_kinds: list[tuple[str, str]]  # (apiVersion, kind) listed for pruning even when Git holds none
    manifests: list[Manifest] = field(default_factory=list)
    # node -> annotation -> value, kept on the Nodes that exist (see annotate.py)
    node_annotations: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def identity_manifest(self) -> Manifest | None:
        for manifest in self.manifests:
            if manifest.key == ObjKey("", "ConfigMap", self.identity_namespace, self.identity_name):
                return manifest
        return None


def list_clusters(root: str) -> list[str]:
    """Names of the cluster directories under ``root`` (those holding a cluster.yml), sorted."""
    if not os.path.isdir(root):
        raise ClusterDirError(f"{root}: no such directory (expected clusters/<cluster>/cluster.yml)")
    return sorted(
        entry
        for entry in os.listdir(root)
        if not entry.startswith(".") and os.path.isfile(os.path.join(root, entry, CLUSTER_FILE))
    )


def select_clusters(root: str, names: list[str] | None) -> list[str]:
    """The clusters a run covers: ``names`` when given (each must exist), else every one."""
    available = list_clusters(root)
    if not names:
        if not available:
            raise ClusterDirError(f"{root}: holds no cluster directory (clusters/<cluster>/cluster.yml)")
        return available
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ClusterDirError(
            f"unknown cluster(s) {', '.join(unknown)}: {root} holds {', '.join(available) or 'none'}"
        )
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return seen


def load_cluster_dir(root: str, name: str, cache_dir: str | None = None) -> ClusterDir:
    """Read and validate ``root/name``. Raises ClusterDirError naming the file and field.

    ``cache_dir`` keeps parsed manifests between runs (see ManifestCache).
    """
    if not HAS_YAML:
        raise ClusterDirError("the Python library PyYAML is required to read cluster directories")
    path = os.path.join(root, name)
    cluster_file = os.path.join(path, CLUSTER_FILE)
    rel = os.path.join(name, CLUSTER_FILE)
    if not os.path.isfile(cluster_file):
        raise ClusterDirError(f"{rel}: missing; every cluster directory starts with its cluster.yml")
    spec = _load_single(cluster_file, rel)
    cluster = _parse_cluster_file(spec, rel, name, path)
    cluster.manifests = _load_manifests(path, name, ManifestCache(cache_dir) if cache_dir else None)
    _check_manifests(cluster)
    return cluster


def _parse_cluster_file(spec, rel: str, name: str, path: str) -> ClusterDir:
    if not isinstance(spec, dict):
        raise ClusterDirError(f"{rel}: must be a mapping, found {type(spec).__name__}")
    if spec.get("cluster") != name:
        raise ClusterDirError(
            f"{rel}: field 'cluster' is {spec.get('cluster')!r}; it must equal the directory name {name!r}"
        )
    context = _required_str(spec, "context", rel)
    datacenter = _required_str(spec, "datacenter", rel)
    identity = spec.get("identity")
    if not isinstance(identity, dict):
        raise ClusterDirError(f"{rel}: field 'identity' must be a mapping with at least 'uid'")
    uid = identity.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ClusterDirError(f"{rel}: field 'identity.uid' must be a non-empty string")
    options = dict(_OPTION_DEFAULTS)
    raw_options = spec.get("options") or {}
    if not isinstance(raw_options, dict):
        raise ClusterDirError(f"{rel}: field 'options' must be a mapping")
    unknown = sorted(set(raw_options) - set(_OPTION_DEFAULTS))
    if unknown:
        raise ClusterDirError(
            f"{rel}: unknown option(s) {', '.join(unknown)} under 'options' "
            f"(known: {', '.join(sorted(_OPTION_DEFAULTS))})"
        )
    options.update(raw_options)
    _check_options(options, rel, "options.")
    prune_kinds = []
    raw_kinds = spec.get("prune_kinds") or []
    if not isinstance(raw_kinds, list):
        raise ClusterDirError(
            f"{rel}: field 'prune_kinds' must be a list like ['v1/ConfigMap', 'apps/v1/Deployment']"
        )
    for index, item in enumerate(raw_kinds):
        if not isinstance(item, str) or "/" not in item or item.endswith("/"):
            raise ClusterDirError(
                f"{rel}: field 'prune_kinds[{index}]' is {item!r}; expected '<apiVersion>/<Kind>' "
                f"like 'apps/v1/Deployment'"
            )
        api_version, kind = item.rsplit("/", 1)
        prune_kinds.append((api_version, kind))
    return ClusterDir(
        name=name,
        path=path,
        context=context,
        datacenter=datacenter,
        identity={"cluster": name, "datacenter": datacenter, "uid": uid},
        identity_namespace=str(identity.get("namespace") or IDENTITY_NAMESPACE),
        identity_name=str(identity.get("name") or IDENTITY_NAME),
        options=options,
        prune_kinds=prune_kinds,
        node_annotations=_node_annotations(spec.get("node_annotations"), rel),
    )


def _node_annotations(raw, rel: str) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ClusterDirError(
            f"{rel}: field 'node_annotations' must map node names to annotations, found {raw!r}"
        )
    out = {}
    for node, values in raw.items():
        if not isinstance(node, str) or not node:
            raise ClusterDirError(f"{rel}: field 'node_annotations' has key {node!r}; expected a node name")
        if not isinstance(values, dict) or not values:
            raise ClusterDirError(
                f"{rel}: field 'node_annotations.{node}' must be a non-empty mapping of annotation "
                f"to value, found {values!r}"
            )
        for key, value in values.items():
            if not isinstance(key, str) or not key or not isinstance(value, str):
                raise ClusterDirError(
                    f"{rel}: field 'node_annotations.{node}.{key}' must be a string (annotation "
                    f"values are strings; quote numbers), found {value!r}"
                )
        out[node] = dict(values)
    return out


def check_run_options(options: dict, where: str) -> None:
    """Validate reconcile options (from cluster.yml or from the run). Raises ClusterDirError."""
    _check_options(options, where, "")


def _check_options(options: dict, rel: str, prefix: str) -> None:
    for key in ("prune", "wait_rollouts"):
        if key in options and not isinstance(options[key], bool):
            raise ClusterDirError(
                f"{rel}: field '{prefix}{key}' must be true or false, found {options[key]!r}"
            )
    max_prune = options.get("max_prune", 0)
    if isinstance(max_prune, bool) or not isinstance(max_prune, int) or max_prune < 0:
        raise ClusterDirError(
            f"{rel}: field '{prefix}max_prune' must be an integer >= 0, found {max_prune!r}"
        )
    kinds = options.get("allow_prune_kinds", [])
    if not isinstance(kinds, list) or any(kind not in PROTECTED_KINDS for kind in kinds):
        raise ClusterDirError(
            f"{rel}: field '{prefix}allow_prune_kinds' must list kinds among "
            f"{', '.join(sorted(PROTECTED_KINDS))}, found {kinds!r}"
        )


def _required_str(spec: dict, key: str, rel: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value:
        raise ClusterDirError(f"{rel}: field {key!r} must be a non-empty string, found {value!r}")
    return value


def _load_single(path: str, rel: str):
    docs = _load_docs(path, rel)
    if len(docs) != 1:
        raise ClusterDirError(f"{rel}: holds {len(docs)} YAML documents; expected exactly one")
    return docs[0]


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cloud58", "gitops")


class ManifestCache:
    """Parsed manifests by the SHA-256 of their bytes, one JSON file per cluster directory.

    Parsing YAML is most of a no-op run's own work; reading and hashing the files is a
    fraction of it. Entries are addressed by content, so they are never stale; a cache
    that cannot be read or written is simply not used. Validation runs on every load.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def _path(self, cluster_path: str) -> str:
        digest = hashlib.sha256(os.path.abspath(cluster_path).encode("utf-8")).hexdigest()[:24]
        return os.path.join(self.directory, f"{digest}.json")

    def load(self, cluster_path: str) -> dict:
        try:
            with open(self._path(cluster_path), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, cluster_path: str, entries: dict) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".manifests-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                # dumps, not dump: json.dump streams through the pure-Python encoder.
                handle.write(json.dumps(entries, separators=(",", ":")))
            os.replace(tmp, self._path(cluster_path))
        except OSError:
            pass


def _load_docs(path: str, rel: str, data: bytes | None = None) -> list:
    try:
        docs = load_yaml_documents(path) if data is None else parse_yaml_documents(data)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ClusterDirError(f"{rel}:{where}: not valid YAML: {problem}") from e
    except (OSError, UnicodeDecodeError, TypeError) as e:
        raise ClusterDirError(f"{rel}: cannot be read: {e}") from e
    return docs


def _manifest_files(path: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.startswith(".") or not filename.endswith(MANIFEST_SUFFIXES):
                continue
            full = os.path.join(dirpath, filename)
            if os.path.samefile(dirpath, path) and filename == CLUSTER_FILE:
                continue
            found.append(full)
    return found


def _load_manifests(path: str, name: str, cache: ManifestCache | None) -> list[Manifest]:
    root = os.path.dirname(path)
    prefix = len(root.rstrip(os.sep)) + 1
    known = cache.load(path) if cache is not None else {}
    seen = {}
    manifests = []
    for full in _manifest_files(path):
        rel = full[prefix:]
        try:
            with open(full, "rb") as handle:
                data = handle.read()
        except OSError as e:
            raise ClusterDirError(f"{rel}: cannot be read: {e}") from e
        digest = hashlib.sha256(data).hexdigest()
        docs = known.get(digest)
        if docs is None:
            docs = _load_docs(full, rel, data)
            if json.loads(json.dumps(docs)) != docs:  # keys or values JSON cannot hold: do not cache
                cache = None
        seen[digest] = docs
        if len(docs) != 1:
            raise ClusterDirError(
                f"{rel}: holds {len(docs)} objects; clusters/ keeps exactly one Kubernetes object per file"
            )
        manifests.append(_validate_object(docs[0], rel, name))
    if cache is not None and seen.keys() != known.keys():
        cache.save(path, seen)
    return manifests


def _validate_object(obj, rel: str, cluster: str) -> Manifest:
    if not isinstance(obj, dict):
        raise ClusterDirError(f"{rel}: a Kubernetes object must be a mapping, found {type(obj).__name__}")
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            raise ClusterDirError(f"{rel}: field {key!r} is missing or not a string")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise ClusterDirError(f"{rel}: field 'metadata' is missing or not a mapping")
    if not isinstance(meta.get("name"), str) or not meta.get("name"):
        raise ClusterDirError(f"{rel}: field 'metadata.name' is missing or not a string")
    if "namespace" in meta and (not isinstance(meta["namespace"], str) or not meta["namespace"]):
        raise ClusterDirError(f"{rel}: field 'metadata.namespace' must be a non-empty string")
    kind = obj["kind"]
    if kind in NAMESPACED_KINDS and not meta.get("namespace"):
        raise ClusterDirError(f"{rel}: {kind} is namespaced; field 'metadata.namespace' is missing")
    if kind in CLUSTER_SCOPED_KINDS and meta.get("namespace"):
        raise ClusterDirError(f"{rel}: {kind} is cluster-scoped; remove field 'metadata.namespace'")
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        labels = {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
        raise ClusterDirError(
            f"{rel}: field 'metadata.labels' must carry {MANAGED_BY_LABEL}: {MANAGED_BY_VALUE} "
            f"(found {labels.get(MANAGED_BY_LABEL)!r})"
        )
    if labels.get(CLUSTER_LABEL) != cluster:
        raise ClusterDirError(
            f"{rel}: field 'metadata.labels.{CLUSTER_LABEL}' is {labels.get(CLUSTER_LABEL)!r}; "
            f"an object in clusters/{cluster}/ must be labelled for cluster {cluster!r}"
        )
    for key in ("status",):
        if key in obj:
            raise ClusterDirError(f"{rel}: field {key!r} is written by the cluster; remove it from Git")
    for key in ("resourceVersion", "uid", "managedFields", "creationTimestamp"):
        if key in meta:
            raise ClusterDirError(
                f"{rel}: field 'metadata.{key}' is written by the cluster; remove it from Git"
            )
    return Manifest(source=rel, obj=obj, key=object_key(obj))


def _check_manifests(cluster: ClusterDir) -> None:
    seen: dict[ObjKey, str] = {}
    versions: dict[GroupKind, tuple[str, str]] = {}
    for manifest in cluster.manifests:
        other = seen.get(manifest.key)
        if other is not None:
            raise ClusterDirError(f"{manifest.source}: {manifest.key} is also defined in {other}")
        seen[manifest.key] = manifest.source
        gk = manifest.key.group_kind
        _group, version = split_api_version(manifest.api_version)
        first = versions.setdefault(gk, (version, manifest.source))
        if first[0] != version:
            raise ClusterDirError(
                f"{manifest.source}: field 'apiVersion' uses {manifest.api_version} but {first[1]} uses "
                f"version {first[0]} of {gk}; keep one version per kind in a cluster directory"
            )
    identity = cluster.identity_manifest
    if identity is not None:
        data = identity.obj.get("data") or {}
        for key, value in cluster.identity.items():
            if str(data.get(key)) != value:
                raise ClusterDirError(
                    f"{identity.source}: field 'data.{key}' is {data.get(key)!r} but "
                    f"{cluster.name}/{CLUSTER_FILE} expects {value!r}"
                )
