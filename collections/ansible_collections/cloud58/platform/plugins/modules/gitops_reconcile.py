#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: gitops_reconcile
short_description: Make Kubernetes clusters match their clusters/<cluster>/ directories
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Reads every selected C(clusters/<cluster>/) directory (C(cluster.yml) and one object per
    file) and fails with the file and the field when one is invalid, before any cluster is
    contacted.
  - For each cluster, in parallel, switches to the kubeconfig context C(cluster.yml) names
    and proves it points at that cluster (identity ConfigMap C(kube-system/cloud58-identity));
    a missing or different identity refuses the cluster before anything is written.
  - Applies by server-side apply with field manager C(cloud58) only the objects that differ
    from the cluster (changed in Git, or fields changed by hand), in the order CRDs (waiting
    until Established), Namespaces, cluster-scoped, namespaced objects.
  - Prunes objects labelled for the cluster that left Git, behind a guard (C(max_prune));
    Namespaces, CRDs and PersistentVolumes only when C(allow_prune_kinds) names them.
  - Keeps the annotations C(cluster.yml) lists under C(node_annotations) (calico-node's
    per-node AS number) on the Nodes that exist, by a JSON merge patch of only the differing
    annotations with field manager C(cloud58-node-annotations); a Node is never created, a
    node not registered yet is reported as pending.
  - A no-op run makes one LIST per kind (and one of the nodes), not one request per object.
  - One reconcile per cluster at a time. A run that writes holds the Lease
    C(kube-system/cloud58-reconcile) (in the identity's namespace) from before its LIST to its
    end, renewing it while it runs; another run of the same cluster waits up to
    C(lock_timeout) seconds, then fails that cluster naming the holder (host, pid, run). A lease
    whose holder stopped renewing it (a crashed run) is taken over. Check mode takes no lock.
  - One failing or unreachable cluster fails only itself; the others finish. The module
    fails when any cluster failed and names it.
  - The report and C(changed) say what was written, whatever fails part-way; once a cluster
    stops answering nothing more is sent to it, the objects written so far are counted, a write
    whose answer was lost is reported with C(maybe_written) (and makes the run changed), and
    the error says how many objects were not attempted.
  - In check mode every write is a server-side dry run (C(dryRun=All)); the API server
    validates and defaults the objects, nothing is changed. With C(--diff) the diffs are real.
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.diff
  - cloud58.platform.kubeconfig
options:
  clusters_dir:
    description:
      - The directory holding one C(<cluster>/cluster.yml) directory per cluster.
    type: path
    required: true
  clusters:
    description:
      - Clusters to reconcile (directory names). Empty means every cluster directory.
    type: list
    elements: str
    default: []
  prune:
    description:
      - Delete objects labelled for the cluster that Git no longer holds.
      - Omitted, each cluster's C(cluster.yml) C(options.prune) decides.
    type: bool
  max_prune:
    description:
      - The most objects one run may delete in one cluster; more refuses the cluster before
        any write. Omitted, C(options.max_prune) of C(cluster.yml).
    type: int
  allow_prune_kinds:
    description:
      - Protected kinds this run may prune. Omitted, C(options.allow_prune_kinds) of C(cluster.yml).
    type: list
    elements: str
    choices: [Namespace, CustomResourceDefinition, PersistentVolume]
  bootstrap_identity:
    description:
      - Create the identity ConfigMap of a cluster that has none (first reconcile of a new
        cluster). An existing identity is never overwritten; a different one still refuses.
    type: bool
    default: false
  wait_rollouts:
    description:
      - After applying, wait until changed Deployments, StatefulSets and DaemonSets have
        rolled out. Omitted, C(options.wait_rollouts) of C(cluster.yml).
    type: bool
  wait_timeout:
    description:
      - Seconds to wait for rollouts before reporting them as failed.
    type: int
    default: 300
  lock_timeout:
    description:
      - Seconds to wait for another reconcile of the same cluster to release its lock before
        failing that cluster (nothing written to it).
    type: int
    default: 120
  parallel:
    description:
      - Clusters reconciled at the same time.
    type: int
    default: 8
  workers:
    description:
      - Requests in flight at the same time within one cluster.
    type: int
    default: 8
  report_path:
    description:
      - Write the per-cluster report as JSON to this file.
    type: path
  cache_dir:
    description:
      - Where parsed manifests are kept between runs, addressed by the hash of their content
        (never stale; a cache that cannot be written is not used).
      - Omitted, C($XDG_CACHE_HOME/cloud58/gitops) or C(~/.cache/cloud58/gitops).
    type: path
requirements:
  - PyYAML
seealso:
  - name: GitOps guide
    description: Cluster directories, the safety rules, check mode and the merge-request job (docs/gitops.md).
    link: https://example.invalid/cloud58/platform/docs/gitops.md
  - module: cloud58.platform.gitops_render
"""

EXAMPLES = r"""
- name: Reconcile every cluster directory
  cloud58.platform.gitops_reconcile:
    clusters_dir: "{{ playbook_dir }}/../clusters"
    report_path: "{{ playbook_dir }}/../build/reconcile-report.json"
  register: reconcile

- name: Reconcile two clusters; allow pruning of one removed namespace
  cloud58.platform.gitops_reconcile:
    clusters_dir: clusters
    clusters: [bj1-k8s, sh1-k8s]
    allow_prune_kinds: [Namespace]
    kubeconfig: ~/.kube/cloud58

- name: First reconcile of a newly provisioned cluster
  cloud58.platform.gitops_reconcile:
    clusters_dir: clusters
    clusters: [gz1-k8s]
    bootstrap_identity: true
"""

RETURN = r"""
summary:
  description:
    - The per-cluster table (created / updated / unchanged / pruned / failed), then one line per
      failure, kept or already-deleted prune candidate, note, and per cluster what happened to
      its node annotations.
  returned: always
  type: list
  elements: str
  sample:
    - "cluster   status        created   updated unchanged    pruned    failed requests  seconds"
    - "bj1-k8s   ok                  0         1        28         0         0       16     0.21"
    - "bj1-k8s: node annotations: 2 annotated, 38 unchanged, 0 pending"
clusters:
  description:
    - Per cluster the status (ok, failed, unreachable), error, counts, request count, the changed
      objects (annotated Nodes have action C(annotate); a prune candidate someone else deleted
      first has action C(gone) and is counted in C(already_gone), not C(pruned); a failed write
      whose answer was lost has C(maybe_written)) and the nodes not registered yet.
  returned: always
  type: dict
  sample:
    bj1-k8s:
      status: ok
      counts: {created: 0, updated: 1, unchanged: 28, pruned: 0, failed: 0, prune_protected: 0,
               already_gone: 0, maybe_written: 0, nodes_annotated: 0, nodes_unchanged: 40,
               nodes_pending: 0}
      objects: [{kind: Deployment, namespace: payments, name: checkout, action: update, reason: drift,
                 fields: ["spec.template.spec.containers[checkout].image"]}]
      pending_nodes: []
failed_clusters:
  description: Clusters that failed or could not be reached; the module fails when it is not empty.
  returned: always
  type: list
  elements: str
  sample: [sh1-k8s]
report_path:
  description: Where the JSON report was written (empty when not requested).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.args import (  # noqa: E402
    KUBECONFIG_ARG_SPEC,
    RECONCILE_ARG_SPEC,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.kube import (  # noqa: E402
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.runner import (  # noqa: E402
    failure_message,
    run_reconcile,
)
from ansible_collections.cloud58.platform.plugins.module_utils.kube.clusters_format import HAS_YAML  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.kube.errors import GitOpsError  # noqa: E402


def argspec():
    return {**RECONCILE_ARG_SPEC, **KUBECONFIG_ARG_SPEC}


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    try:
        result = run_reconcile(module.params, check_mode=module.check_mode, diff=module._diff)
    except GitOpsError as exc:
        module.fail_json(msg=str(exc))
    if result["failed_clusters"]:
        module.fail_json(msg=failure_message(result), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
