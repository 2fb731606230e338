#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: gitops_render
short_description: Render clusters/<cluster>/ from the inventories and the app specs
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Plans every inventory directory (the topology planner validates it), validates every
    app spec C(apps/<app>.yaml) against its JSON Schema and the plan, and writes one
    directory per cluster, C(cluster.yml) plus one object per file, with deterministic
    names and content.
  - Platform objects rendered for every cluster, the identity ConfigMap, the
    C(cloud58-system) namespace, RBAC of platform components, PriorityClasses; per business
    namespace its Namespace, ResourceQuota and team RoleBinding; per app its Deployment,
    Service, HorizontalPodAutoscaler, PodDisruptionBudget and ConfigMap.
  - Stale files of a rendered cluster are removed; when every cluster is rendered, so are
    directories of clusters no inventory defines any more.
  - An invalid spec fails with the file, the path inside it and the rule broken, and
    nothing is written.
  - Runs on the controller and contacts no cluster.
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.no_diff
options:
  inventories_dir:
    description:
      - The directory holding one inventory directory per datacenter (C(inventories/<dc>/hosts.yml)).
    type: path
    required: true
  apps_dir:
    description:
      - The directory of app specs; files starting with C(_) or C(.) are ignored.
    type: path
    required: true
  clusters_dir:
    description:
      - The directory to write, C(clusters/).
    type: path
    required: true
  clusters:
    description:
      - Write only these clusters' directories (everything is still validated). Empty means every cluster.
    type: list
    elements: str
    default: []
requirements:
  - PyYAML
  - jsonschema
  - netaddr
seealso:
  - name: App specs
    description: Every field of an app spec, generated from its schema (docs/apps.md in the repository).
    link: https://example.invalid/cloud58/platform/docs/apps.md
  - module: cloud58.platform.gitops_reconcile
"""

EXAMPLES = r"""
- name: Render every cluster directory
  cloud58.platform.gitops_render:
    inventories_dir: "{{ playbook_dir }}/../inventories"
    apps_dir: "{{ playbook_dir }}/../apps"
    clusters_dir: "{{ playbook_dir }}/../clusters"

- name: Fail when clusters/ is not current (CI)
  cloud58.platform.gitops_render:
    inventories_dir: inventories
    apps_dir: apps
    clusters_dir: clusters
  check_mode: true
  register: render
  failed_when: render.changed
"""

RETURN = r"""
clusters:
  description: The cluster directories rendered.
  returned: success
  type: list
  elements: str
  sample: [bj1-k8s, lab1-k8s, lab2-k8s, sh1-k8s]
objects:
  description: Objects rendered per cluster.
  returned: success
  type: dict
  sample: {bj1-k8s: 29, lab1-k8s: 19}
apps:
  description: The app specs read.
  returned: success
  type: list
  elements: str
  sample: [checkout, echo]
files:
  description: Files added, changed and removed (would be, in check mode), relative to C(clusters_dir).
  returned: success
  type: dict
  sample: {added: [], changed: [bj1-k8s/36_deployment_payments_checkout.yaml], removed: []}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.kube.errors import GitOpsError  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.render.runner import (  # noqa: E402
    RENDER_ARG_SPEC,
    run_render,
)


def argspec():
    return dict(RENDER_ARG_SPEC)


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    try:
        result = run_render(module.params, check=module.check_mode)
    except GitOpsError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
