#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: static_pods
short_description: Write the control plane's static pod manifests and kubeconfigs on a host
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Computes the static pod manifests of a host from the topology plan and the settings
    (etcd and events etcd on their members; kube-apiserver, kube-controller-manager and
    kube-scheduler on masters) and writes them to C(<config_dir>/manifests), with the
    kubeconfigs and the audit policy those components read.
  - Writes a file only when its content (or its mode, 0600) differs; C(changed) says exactly
    whether anything was written, C(files) which. The files contain no key material; the
    kubeconfigs point at certificate files under C(<config_dir>/pki).
  - Each manifest carries a digest of the PKI files its component reads, so replacing a
    certificate changes the manifest and the kubelet restarts that pod.
  - With O(state=query) it only reports the versions of the manifests present.
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.diff
options:
  cluster:
    description: The cluster's entry of the topology plan (C(plan.clusters[<name>])).
    type: dict
    required: true
  host:
    description: This host's name in the plan.
    type: str
    required: true
  settings:
    description: Control plane settings (versions, registry, paths, tuning); see the C(control_plane) role.
    type: dict
    default: {}
  components:
    description:
      - Only these components (C(etcd), C(etcd-events), C(kube-apiserver),
        C(kube-controller-manager), C(kube-scheduler)); all of the host's when left out.
    type: list
    elements: str
  state:
    description: C(present) writes the files; C(query) reads the versions in place.
    type: str
    choices: [present, query]
    default: present
"""

EXAMPLES = r"""
- name: Write the static pods of this master
  cloud58.platform.static_pods:
    cluster: "{{ cloud58_topology.plan.clusters['lab1-k8s'] }}"
    host: "{{ inventory_hostname }}"
    settings:
      version: v1.36.3
      image_registry: localhost/cloud58

- name: Read the versions the manifests run now
  cloud58.platform.static_pods:
    cluster: "{{ cloud58_topology.plan.clusters['lab1-k8s'] }}"
    host: "{{ inventory_hostname }}"
    state: query
  register: running
"""

RETURN = r"""
files:
  description: Every file the module manages on this host, and whether this run changed it.
  returned: always
  type: list
  elements: dict
  sample: [{path: /etc/kubernetes/manifests/etcd.yaml, changed: true}]
restart:
  description:
    - Components whose manifest this run changed (in check mode, would change); the kubelet
      replaces their pods.
  returned: always
  type: list
  elements: str
  sample: [kube-apiserver]
written_at:
  description:
    - The host's clock (seconds since the epoch) after writing; a restarted component's
      process starts after it.
  returned: always
  type: float
  sample: 1796000000.5
running:
  description: Image tag per component of the manifests present before this run.
  returned: always
  type: dict
  sample: {kube-apiserver: v1.35.2, etcd: v3.6.8}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.errors import (  # noqa: E402
    ControlPlaneError,
)
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.runner import (  # noqa: E402
    run_static_pods,
)


def argspec():
    return {
        "cluster": {"type": "dict", "required": True},
        "host": {"type": "str", "required": True},
        "settings": {"type": "dict", "default": {}},
        "components": {"type": "list", "elements": "str"},
        "state": {"type": "str", "choices": ["present", "query"], "default": "present"},
    }


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    try:
        result = run_static_pods(module.params, check_mode=module.check_mode, diff_mode=module._diff)
    except (ControlPlaneError, ValueError) as exc:
        module.fail_json(msg=str(exc), changed=False)
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename}: {exc.strerror}", changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
