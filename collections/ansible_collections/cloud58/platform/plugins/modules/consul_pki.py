#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: consul_pki
short_description: Issue and renew the Consul CA and every host's Consul certificate
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Keeps the Consul PKI directory on the controller in line with the plan; one CA for every
    datacenter (servers verify each other across the WAN), and per host of the plan a
    certificate for server and client use named C(server.<dc>.<domain>) on the hosts of the
    group C(consul_servers), C(client.<dc>.<domain>) on every other host, plus C(localhost)
    and 127.0.0.1; and Prometheus' client certificate C(prometheus.crt) (client use only), which
    the prometheus role copies for its consul jobs.
  - Issues what is missing and keeps the rest byte for byte, with the rules of
    M(cloud58.platform.cluster_pki) (re-issued with the same key when the names differ, it
    expires within O(renew_before_days) or another CA signed it; a certificate without its key
    fails and changes nothing).
  - Keys are written with mode 0600 in 0700 directories. The result names files and reasons,
    never key material. Run it on the controller, delegated to C(localhost).
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.no_diff
  - cloud58.platform.pki
options:
  plan:
    description: The topology plan (the C(plan) result of M(cloud58.platform.topology_plan)).
    type: dict
    required: true
  pki_dir:
    description: The Consul PKI directory on the controller. Keep it outside any Git work tree.
    type: path
    required: true
  domain:
    description: Consul's DNS domain (C(consul_domain) of the role C(consul)).
    type: str
    default: consul
requirements:
  - cryptography (on the controller)
"""

EXAMPLES = r"""
- name: Issue the Consul certificates on the controller
  cloud58.platform.consul_pki:
    plan: "{{ hostvars['localhost'].cloud58_topology.plan }}"
    pki_dir: ~/.cache/cloud58/pki/consul
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
actions:
  description: What happened to each certificate and key (issued, renewed, reissued, mode, kept).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: ca, action: kept}
    - {name: hosts/lab1-w3, action: issued}
expiry:
  description: Expiry date (UTC) of every certificate after the run.
  returned: always
  type: dict
  sample: {ca: "2035-11-28T07:00:00Z", hosts/lab1-m1: "2026-11-28T07:00:00Z"}
pki_dir:
  description: The PKI directory, with C(~) expanded.
  returned: always
  type: str
  sample: /root/.cache/cloud58/pki/consul
host_files:
  description:
    - Per host, the files it receives, C(src) relative to O(pki_dir) and C(dest) relative to
      the role's C(consul_tls_dir); C(secret) marks keys.
  returned: always
  type: dict
  sample: {lab1-w1: [{src: ca.crt, dest: ca.crt, secret: false}]}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.consul import (  # noqa: E402
    ConsulError,
    consul_pki_plan,
)
from ansible_collections.cloud58.platform.plugins.module_utils.pki.x509 import (  # noqa: E402
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    PkiError,
    issue_argspec,
)


def argspec():
    return {
        "plan": {"type": "dict", "required": True},
        "pki_dir": {"type": "path", "required": True},
        "domain": {"type": "str", "default": "consul"},
        **issue_argspec(),
    }


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.pki_store import ensure_pki

    params = module.params
    directory = params["pki_dir"]  # type path: ~ already expanded
    try:
        plan = consul_pki_plan(params["plan"], params["domain"])
        result = ensure_pki(
            directory,
            plan,
            key_type=params["key_type"],
            ca_days=params["ca_days"],
            cert_days=params["cert_days"],
            renew_before_days=params["renew_before_days"],
            check_mode=module.check_mode,
            cluster_files=False,
        )
    except (ConsulError, PkiError) as exc:
        module.fail_json(msg=f"consul_pki: {exc}", changed=False)
    module.exit_json(pki_dir=directory, host_files=plan["host_files"], **result)


if __name__ == "__main__":
    main()
