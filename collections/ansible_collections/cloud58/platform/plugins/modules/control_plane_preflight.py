#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: control_plane_preflight
short_description: Check a cluster's control plane settings, etcd, SANs and version skew
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Runs on the controller before any host of a cluster is changed, and fails with every
    problem at once, each naming the cluster or host and the values.
  - Checks the settings (types, ranges, durations, eviction and leader election tuning), that
    etcd and events etcd have an odd member count, that no two listeners of a host share a
    port, that the apiserver certificate's SANs collide with no other cluster's API and no
    host outside the cluster's masters, and the Kubernetes version skew policy (one minor
    at a time, kubelets at most 3 minors older and never newer, controller-manager and
    scheduler not newer and at most 1 minor older, a supported etcd).
  - Contacts no host and changes nothing; C(changed) is always false.
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.no_diff
options:
  plan:
    description: The whole topology plan (the C(topology_plan) module's C(plan)).
    type: dict
    required: true
  cluster:
    description: Name of the cluster to check.
    type: str
    required: true
  settings:
    description: Control plane settings (see the C(control_plane) role).
    type: dict
    default: {}
  running:
    description:
      - Per master, the versions its manifests run now (C(static_pods) with C(state=query));
        empty for a new cluster.
    type: dict
    default: {}
  kubelets:
    description: Per node, the version of its kubelet.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Check the control plane before touching a host
  cloud58.platform.control_plane_preflight:
    plan: "{{ cloud58_topology.plan }}"
    cluster: lab1-k8s
    settings: {version: v1.36.3}
    running: {lab1-m1: {kube-apiserver: v1.35.4}}
    kubelets: {lab1-w1: v1.35.4}
"""

RETURN = r"""
settings:
  description: The settings with every default filled in (and the etcd version derived).
  returned: success
  type: dict
  sample: {version: v1.36.3, etcd_version: 3.6.8}
images:
  description: The image of each component.
  returned: success
  type: dict
  sample: {kube-apiserver: registry.cloud58.internal/kubernetes/kube-apiserver:v1.36.3}
identity:
  description: The cluster identity object (ConfigMap kube-system/cloud58-identity) that reconcile checks.
  returned: success
  type: dict
  sample:
    kind: ConfigMap
    data: {cluster: lab1-k8s, datacenter: lab1, uid: 44e4fb3e-7fc6-541a-9bd5-dbd3f9617d0d}
problems:
  description: Every problem found, when the check fails.
  returned: failure
  type: list
  elements: str
  sample: ["etcd of cluster 'lab1-k8s' has 4 members (...): etcd needs an odd number (3 or 5) ..."]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.errors import (  # noqa: E402
    ControlPlaneError,
)
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.runner import (  # noqa: E402
    run_preflight,
)


def argspec():
    return {
        "plan": {"type": "dict", "required": True},
        "cluster": {"type": "str", "required": True},
        "settings": {"type": "dict", "default": {}},
        "running": {"type": "dict", "default": {}},
        "kubelets": {"type": "dict", "default": {}},
    }


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    try:
        result = run_preflight(module.params)
    except ControlPlaneError as exc:
        module.fail_json(msg=exc.text(), problems=exc.problems, changed=False)
    except (KeyError, TypeError) as exc:
        module.fail_json(msg=f"plan: not a topology plan ({exc!r} is missing or wrong)", changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
