"""The api_endpoint role's haproxy.cfg (roles/api_endpoint/templates/haproxy.cfg.j2) rendered by
Jinja2 with the role's defaults and checked by the real haproxy (Debian's 2.6, `haproxy -dW -c`,
stricter than the role's `haproxy -c`): the exporter frontend Prometheus' job `haproxy` scrapes,
exactly, with its port, address and path from the role's variables (written by the filter
`haproxy_exporter_frontend`, the ingress gateways' text); port 0 renders none, and the blank
lines around it stay as they were."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.filter.gateway import FilterModule as GatewayFilters
from ansible_collections.cloud58.platform.plugins.module_utils.pki import x509
from cloud58_lab import programs

ROLE = (
    Path(__file__).resolve().parents[2]
    / "collections/ansible_collections/cloud58/platform/roles/api_endpoint"
)
SERVERS = [
    {"name": "lab1-m1", "address": "198.18.0.11", "port": 6443},
    {"name": "lab1-m2", "address": "198.18.0.12", "port": 6443},
]


def _render(**overrides) -> str:
    """The template under the role's defaults (the plan's names left out) and ``overrides``."""
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    variables = {k: v for k, v in defaults.items() if "{{" not in str(v)}
    variables.update(
        ansible_managed="managed",
        inventory_hostname="lab1-m1",
        api_endpoint_cluster="lab1-k8s",
        api_endpoint__servers=SERVERS,
        **overrides,
    )
    # Ansible's template module: trim_blocks on.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    # The collection's filters under their FQCN, as Ansible's templar finds them.
    env.filters.update({f"cloud58.platform.{k}": f for k, f in GatewayFilters().filters().items()})
    return env.from_string((ROLE / "templates/haproxy.cfg.j2").read_text()).render(variables)


def _section(text: str, header: str) -> list:
    lines = [*text.splitlines(), ""]
    start = lines.index(header)
    return lines[start : lines.index("", start)]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {},
            [
                "frontend cloud58_metrics",
                "    mode http",
                "    bind 0.0.0.0:8405",
                "    http-request set-log-level silent",
                "    http-request use-service prometheus-exporter if { path /metrics }",
                "    http-request deny deny_status 404",
            ],
            id="defaults",
        ),
        pytest.param(
            {
                "api_endpoint_metrics_address": "198.18.0.11",
                "api_endpoint_metrics_port": 9101,
                "api_endpoint_metrics_path": "/haproxy",
            },
            [
                "frontend cloud58_metrics",
                "    mode http",
                "    bind 198.18.0.11:9101",
                "    http-request set-log-level silent",
                "    http-request use-service prometheus-exporter if { path /haproxy }",
                "    http-request deny deny_status 404",
            ],
            id="settings",
        ),
    ],
)
def test_exporter_frontend_exactly(overrides, expected):
    assert _section(_render(**overrides), "frontend cloud58_metrics") == expected


def test_port_zero_renders_no_exporter():
    text = _render(api_endpoint_metrics_port=0)
    assert [line for line in text.splitlines() if line.startswith(("frontend", "backend"))] == [
        "frontend kube-apiserver",
        "backend kube-apiserver",
    ]
    assert "    default_backend kube-apiserver\n\nbackend kube-apiserver\n" in text


def test_one_blank_line_around_the_exporter():
    assert (
        "    default_backend kube-apiserver\n"
        "\n"
        "# HAProxy's built-in Prometheus exporter; Prometheus' job haproxy scrapes it.\n"
        "frontend cloud58_metrics\n"
        "    mode http\n"
        "    bind 0.0.0.0:8405\n"
        "    http-request set-log-level silent\n"
        "    http-request use-service prometheus-exporter if { path /metrics }\n"
        "    http-request deny deny_status 404\n"
        "\n"
        "backend kube-apiserver\n"
    ) in _render()


@pytest.mark.parametrize(
    "overrides", [pytest.param({}, id="exporter"), pytest.param({"api_endpoint_metrics_port": 0}, id="none")]
)
def test_rendered_config_passes_haproxy_check(tmp_path, overrides):
    # haproxy loads the health checks' CA file: a real CA certificate.
    ca = tmp_path / "ca.crt"
    ca.write_bytes(x509.cert_pem(x509.make_ca(x509.generate_key("ecdsa-p256"), "test-ca", 1)))
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(_render(api_endpoint_ca_file=str(ca), **overrides))
    result = subprocess.run(
        programs.argv("haproxy", "-dW", "-c", "-f", conf), capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (0, "Configuration file is valid\n"), result.stderr
    assert "[ALERT]" not in result.stderr
