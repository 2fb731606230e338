"""Loading clusters/<cluster>/: bad input fails with the file and the field, before any cluster is touched."""

from __future__ import annotations

import re

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.clusterdir import (
    list_clusters,
    load_cluster_dir,
    select_clusters,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.errors import ClusterDirError
from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import ObjKey

LABELS = {"app.kubernetes.io/managed-by": "cloud58", "cloud58.io/cluster": "c1"}
CLUSTER_YML = {"cluster": "c1", "context": "ctx-c1", "datacenter": "dc1", "identity": {"uid": "u1"}}


def configmap(name="cm", namespace="ns", labels=None, **extra):
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(LABELS if labels is None else labels),
        },
        "data": {"k": "v"},
    }
    obj.update(extra)
    return obj


def write(root, rel, content):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))


@pytest.fixture
def root(tmp_path):
    write(tmp_path, "c1/cluster.yml", CLUSTER_YML)
    write(tmp_path, "c1/10-configmap-ns-cm.yaml", configmap())
    return tmp_path


def test_valid_directory_loads_with_defaults(root):
    write(
        root,
        "c1/sub/20-namespace-ns.yaml",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns", "labels": LABELS}},
    )
    cluster = load_cluster_dir(str(root), "c1")
    assert (cluster.name, cluster.context, cluster.datacenter) == ("c1", "ctx-c1", "dc1")
    assert cluster.identity == {"cluster": "c1", "datacenter": "dc1", "uid": "u1"}
    assert (cluster.identity_namespace, cluster.identity_name) == ("kube-system", "cloud58-identity")
    assert cluster.options == {
        "prune": True,
        "max_prune": 20,
        "allow_prune_kinds": [],
        "wait_rollouts": False,
    }
    assert [m.key for m in cluster.manifests] == [
        ObjKey("", "ConfigMap", "ns", "cm"),
        ObjKey("", "Namespace", "", "ns"),
    ]
    assert [m.source for m in cluster.manifests] == [
        "c1/10-configmap-ns-cm.yaml",
        "c1/sub/20-namespace-ns.yaml",
    ]


def test_options_and_prune_kinds_are_read(root):
    write(
        root,
        "c1/cluster.yml",
        {
            **CLUSTER_YML,
            "options": {"max_prune": 3, "allow_prune_kinds": ["Namespace"]},
            "prune_kinds": ["v1/ConfigMap", "apps/v1/Deployment"],
        },
    )
    cluster = load_cluster_dir(str(root), "c1")
    assert cluster.options["max_prune"] == 3
    assert cluster.options["allow_prune_kinds"] == ["Namespace"]
    assert cluster.prune_kinds == [("v1", "ConfigMap"), ("apps/v1", "Deployment")]
    assert cluster.node_annotations == {}


def test_node_annotations_are_read(root):
    annotations = {"n1": {"projectcalico.org/ASNumber": "65111"}, "n2": {"a": "b", "c": ""}}
    write(root, "c1/cluster.yml", {**CLUSTER_YML, "node_annotations": annotations})
    assert load_cluster_dir(str(root), "c1").node_annotations == annotations


BAD = [
    pytest.param(
        "c1/cluster.yml",
        "cluster: c1\ncontext: a: b\n",
        "c1/cluster.yml: line 2 column 11: not valid YAML: mapping values are not allowed in this context",
        id="cluster-yml-bad-yaml",
    ),
    pytest.param(
        "c1/cluster.yml",
        {**CLUSTER_YML, "cluster": "c2"},
        "c1/cluster.yml: field 'cluster' is 'c2'; it must equal the directory name 'c1'",
        id="cluster-name-mismatch",
    ),
    pytest.param(
        "c1/cluster.yml",
        {k: v for k, v in CLUSTER_YML.items() if k != "context"},
        "c1/cluster.yml: field 'context' must be a non-empty string, found None",
        id="no-context",
    ),
    pytest.param(
        "c1/cluster.yml",
        {**CLUSTER_YML, "identity": {}},
        "c1/cluster.yml: field 'identity.uid' must be a non-empty string",
        id="no-uid",
    ),
    pytest.param(
        "c1/cluster.yml",
        {**CLUSTER_YML, "options": {"max_prun": 1}},
        "c1/cluster.yml: unknown option(s) max_prun under 'options'",
        id="unknown-option",
    ),
    pytest.param(
        "c1/cluster.yml",
        {**CLUSTER_YML, "options": {"max_prune": -1}},
        "c1/cluster.yml: field 'options.max_prune' must be an integer >= 0, found -1",
        id="negative-cap",
    ),
    pytest.param(
        "c1/cluster.yml",
        {**CLUSTER_YML, "options": {"allow_prune_kinds": ["Secret"]}},
        "c1/cluster.yml: field 'options.allow_prune_kinds' must list kinds among",
        id="allow-unprotected-kind",
    ),
    pytest.param(
        "c1/cluster.yml",
        {**CLUSTER_YML, "prune_kinds": ["ConfigMap"]},
        "c1/cluster.yml: field 'prune_kinds[0]' is 'ConfigMap'",
        id="prune-kind-without-version",
    ),
    pytest.param(
        "c1/cluster.yml",
        {**CLUSTER_YML, "node_annotations": ["n1"]},
        "c1/cluster.yml: field 'node_annotations' must map node names to annotations, found ['n1']",
        id="node-annotations-not-a-mapping",
    ),
    pytest.param(
        "c1/cluster.yml",
        {**CLUSTER_YML, "node_annotations": {"n1": {}}},
        "c1/cluster.yml: field 'node_annotations.n1' must be a non-empty mapping of annotation to value, "
        "found {}",
        id="node-without-annotations",
    ),
    pytest.param(
        "c1/cluster.yml",
        {**CLUSTER_YML, "node_annotations": {"n1": {"projectcalico.org/ASNumber": 65111}}},
        "c1/cluster.yml: field 'node_annotations.n1.projectcalico.org/ASNumber' must be a string "
        "(annotation values are strings; quote numbers), found 65111",
        id="annotation-value-not-a-string",
    ),
    pytest.param(
        "c1/x.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
        "c1/x.yaml: line 5 column 3: not valid YAML: found duplicate key 'name'",
        id="duplicate-key",
    ),
    pytest.param(
        "c1/x.yaml",
        "base: &b {app: x}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  <<: *b\n  name: a\n  name: b\n",
        "c1/x.yaml: line 7 column 3: not valid YAML: found duplicate key 'name'",
        id="duplicate-key-beside-a-merge-key",
    ),
    pytest.param(
        "c1/x.yaml",
        "kind: [ConfigMap\n",
        "c1/x.yaml: line 2 column 1: not valid YAML: did not find expected ',' or ']'",
        id="manifest-bad-yaml",
    ),
    pytest.param(
        "c1/x.yaml",
        "---\n" + yaml.safe_dump(configmap("a")) + "---\n" + yaml.safe_dump(configmap("b")),
        "c1/x.yaml: holds 2 objects; clusters/ keeps exactly one Kubernetes object per file",
        id="two-objects",
    ),
    pytest.param(
        "c1/x.yaml",
        "- 1\n",
        "c1/x.yaml: a Kubernetes object must be a mapping, found list",
        id="not-a-mapping",
    ),
    pytest.param(
        "c1/x.yaml",
        {k: v for k, v in configmap().items() if k != "kind"},
        "c1/x.yaml: field 'kind' is missing or not a string",
        id="no-kind",
    ),
    pytest.param(
        "c1/x.yaml",
        {**configmap(), "metadata": {"namespace": "ns", "labels": LABELS}},
        "c1/x.yaml: field 'metadata.name' is missing or not a string",
        id="no-name",
    ),
    pytest.param(
        "c1/x.yaml",
        configmap(namespace=None),
        "c1/x.yaml: field 'metadata.namespace' must be a non-empty string",
        id="null-namespace",
    ),
    pytest.param(
        "c1/x.yaml",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "n", "namespace": "x", "labels": LABELS},
        },
        "c1/x.yaml: Namespace is cluster-scoped; remove field 'metadata.namespace'",
        id="cluster-scoped-with-namespace",
    ),
    pytest.param(
        "c1/x.yaml",
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": LABELS}},
        "c1/x.yaml: Deployment is namespaced; field 'metadata.namespace' is missing",
        id="namespaced-without-namespace",
    ),
    pytest.param(
        "c1/x.yaml",
        configmap("other", labels={**LABELS, "cloud58.io/cluster": "c2"}),
        "c1/x.yaml: field 'metadata.labels.cloud58.io/cluster' is 'c2'; "
        "an object in clusters/c1/ must be labelled for cluster 'c1'",
        id="labelled-for-another-cluster",
    ),
    pytest.param(
        "c1/x.yaml",
        configmap("other", labels={"cloud58.io/cluster": "c1"}),
        "c1/x.yaml: field 'metadata.labels' must carry app.kubernetes.io/managed-by: cloud58",
        id="not-managed-by-us",
    ),
    pytest.param(
        "c1/x.yaml",
        configmap("cm"),
        "c1/x.yaml: ConfigMap/ns/cm is also defined in c1/10-configmap-ns-cm.yaml",
        id="duplicate",
    ),
    pytest.param(
        "c1/x.yaml",
        configmap("s", status={"a": 1}),
        "c1/x.yaml: field 'status' is written by the cluster",
        id="status-in-git",
    ),
    pytest.param(
        "c1/x.yaml",
        {**configmap("r"), "metadata": {**configmap("r")["metadata"], "resourceVersion": "1"}},
        "c1/x.yaml: field 'metadata.resourceVersion' is written by the cluster",
        id="resource-version-in-git",
    ),
    pytest.param(
        "c1/x.yaml",
        configmap(
            "cloud58-identity",
            namespace="kube-system",
            data={"cluster": "c1", "datacenter": "dc1", "uid": "other"},
        ),
        "c1/x.yaml: field 'data.uid' is 'other' but c1/cluster.yml expects 'u1'",
        id="identity-disagrees-with-cluster-yml",
    ),
]


@pytest.mark.parametrize(("rel", "content", "message"), BAD)
def test_bad_input_names_file_and_field(root, rel, content, message):
    write(root, rel, content)
    with pytest.raises(ClusterDirError, match="^" + re.escape(message)):
        load_cluster_dir(str(root), "c1")


def test_versions_of_one_kind_must_agree(root):
    hpa = {"kind": "HorizontalPodAutoscaler", "metadata": {"namespace": "ns", "labels": LABELS}}
    write(
        root,
        "c1/a.yaml",
        {**hpa, "apiVersion": "autoscaling/v2", "metadata": {**hpa["metadata"], "name": "a"}},
    )
    write(
        root,
        "c1/b.yaml",
        {**hpa, "apiVersion": "autoscaling/v1", "metadata": {**hpa["metadata"], "name": "b"}},
    )
    with pytest.raises(
        ClusterDirError,
        match=r"^c1/b\.yaml: field 'apiVersion' uses autoscaling/v1 but c1/a\.yaml uses version v2",
    ):
        load_cluster_dir(str(root), "c1")


def test_missing_cluster_yml(tmp_path):
    (tmp_path / "c9").mkdir()
    with pytest.raises(ClusterDirError, match=r"^c9/cluster\.yml: missing"):
        load_cluster_dir(str(tmp_path), "c9")


def test_listing_and_selecting_clusters(root):
    write(root, "c2/cluster.yml", {**CLUSTER_YML, "cluster": "c2"})
    (root / "not-a-cluster").mkdir()
    assert list_clusters(str(root)) == ["c1", "c2"]
    assert select_clusters(str(root), None) == ["c1", "c2"]
    assert select_clusters(str(root), ["c2", "c1", "c2"]) == ["c2", "c1"]
    with pytest.raises(ClusterDirError, match=r"^unknown cluster\(s\) c3: .* holds c1, c2$"):
        select_clusters(str(root), ["c3"])


def test_empty_root_has_no_clusters(tmp_path):
    with pytest.raises(ClusterDirError, match="holds no cluster directory"):
        select_clusters(str(tmp_path), [])


def test_manifest_cache_is_addressed_by_content(root, tmp_path):
    cache = tmp_path / "cache"
    first = load_cluster_dir(str(root), "c1", str(cache))
    [entry] = list(cache.iterdir())
    assert [m.obj for m in first.manifests] == [configmap()]
    # a file changed under the same name is parsed again, never served from the cache
    write(root, "c1/10-configmap-ns-cm.yaml", configmap(data={"k": "new"}))
    second = load_cluster_dir(str(root), "c1", str(cache))
    assert second.manifests[0].obj["data"] == {"k": "new"}
    # an invalid file is refused with a cache as without
    write(root, "c1/10-configmap-ns-cm.yaml", configmap(labels={}))
    with pytest.raises(ClusterDirError, match=re.escape("must carry app.kubernetes.io/managed-by")):
        load_cluster_dir(str(root), "c1", str(cache))
    # an unreadable cache is ignored
    entry.write_text("{not json")
    write(root, "c1/10-configmap-ns-cm.yaml", configmap())
    assert load_cluster_dir(str(root), "c1", str(cache)).manifests[0].obj == configmap()
