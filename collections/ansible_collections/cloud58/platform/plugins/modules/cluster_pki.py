#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_pki
short_description: Issue and renew the certificates and keys of a cloud58 cluster
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Keeps the PKI directory of one cluster on the controller in line with the plan
    (Kubernetes, etcd and front-proxy CAs; apiserver serving certificate with the API VIP,
    DNS name, master names and addresses and the C(kubernetes) Service address; etcd server
    and peer certificates per member; client certificates of the apiserver, admin,
    controller-manager and scheduler; service-account key pair; the encryption-at-rest
    configuration; an admin kubeconfig).
  - Reads what exists and issues only what is missing. A certificate is re-issued, with the
    same key and by the same CA, when it expires within O(renew_before_days), when its SANs,
    subject or usages differ from the plan, or when another CA signed it. CAs are renewed
    with their own key, so certificates they signed stay valid.
  - A certificate without its key, or a key that does not match its certificate, fails the
    module and changes nothing; a new key is a decision for a person.
  - Keys are written with mode 0600 in 0700 directories. The result names files and reasons,
    never key material. Run it on the controller, delegated to C(localhost).
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.no_diff
  - cloud58.platform.pki
options:
  cluster:
    description:
      - The cluster's entry of the topology plan (C(plan.clusters[<name>])).
    type: dict
    required: true
  settings:
    description:
      - Control plane settings (see the C(control_plane) role); only C(cluster_domain),
        C(extra_sans) and C(admin_server) matter here.
    type: dict
    default: {}
  pki_dir:
    description:
      - The cluster's PKI directory on the controller. Keep it outside any Git work tree.
    type: path
    required: true
requirements:
  - cryptography (on the controller)
"""

EXAMPLES = r"""
- name: Issue the cluster's certificates on the controller
  cloud58.platform.cluster_pki:
    cluster: "{{ cloud58_topology.plan.clusters['lab1-k8s'] }}"
    pki_dir: ~/.cache/cloud58/pki/lab1-k8s
  delegate_to: localhost

- name: Renew whatever expires within 30 days
  cloud58.platform.cluster_pki:
    cluster: "{{ cloud58_topology.plan.clusters['lab1-k8s'] }}"
    pki_dir: ~/.cache/cloud58/pki/lab1-k8s
    renew_before_days: 30
  delegate_to: localhost
"""

RETURN = r"""
actions:
  description:
    - What happened to each certificate, key and file
      (issued, renewed, reissued, updated, mode, kept).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: ca, action: kept}
    - {name: apiserver, action: reissued, reason: "DNS names +api.example.org"}
expiry:
  description: Expiry date (UTC) of every certificate after the run.
  returned: always
  type: dict
  sample: {ca: "2035-11-28T07:00:00Z", apiserver: "2026-11-28T07:00:00Z"}
pki_dir:
  description: The PKI directory, with C(~) expanded.
  returned: always
  type: str
  sample: /root/.cache/cloud58/pki/lab1-k8s
host_files:
  description:
    - Per host, the files it receives, C(src) relative to O(pki_dir) and C(dest) relative to
      the host's C(<config_dir>/pki); C(secret) marks keys.
  returned: always
  type: dict
  sample: {lab1-m1: [{src: etcd/lab1-m1-server.crt, dest: etcd/server.crt, secret: false}]}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.errors import (  # noqa: E402
    ControlPlaneError,
)
from ansible_collections.cloud58.platform.plugins.module_utils.pki.x509 import (  # noqa: E402
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    PkiError,
    issue_argspec,
)


def argspec():
    return {
        "cluster": {"type": "dict", "required": True},
        "settings": {"type": "dict", "default": {}},
        "pki_dir": {"type": "path", "required": True},
        **issue_argspec(),
    }


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.runner import run_cluster_pki

    try:
        result = run_cluster_pki(module.params, check_mode=module.check_mode)
    except (ControlPlaneError, PkiError) as exc:
        module.fail_json(msg=str(exc), changed=False)
    except (KeyError, TypeError) as exc:
        module.fail_json(
            msg=f"cluster: not a cluster entry of the topology plan ({exc!r} is missing or wrong)"
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
