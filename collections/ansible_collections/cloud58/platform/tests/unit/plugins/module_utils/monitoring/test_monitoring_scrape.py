"""The Prometheus scrape configuration of a datacenter, computed from the lab plan (pure)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils import consul, gateway
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane import manifests, pki_plan
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.settings import settings_from
from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import (
    MonitoringError,
    client_files,
    config_text,
    monitoring_hosts,
    scrape,
    scrape_config,
    server_args,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = Path(__file__).resolve().parents[9]


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


def _job(config, name):
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == name]
    return job


def _targets(job):
    return [
        (sc["targets"][0], sc["labels"].get("cluster"), sc["labels"]["rack"], sc["labels"]["host"])
        for sc in job["static_configs"]
    ]


def test_job_names_of_lab1_in_role_order(plan):
    assert [j["job_name"] for j in scrape_config(plan, "lab1")["scrape_configs"]] == [
        "prometheus",
        "node",
        "podlogs",
        "kubelet/lab1-k8s",
        "cadvisor/lab1-k8s",
        "signals/lab1-k8s",
        "netshaper/lab1-k8s",
        "overload/lab1-k8s",
        "crashkeeper/lab1-k8s",
        "etcd/lab1-k8s",
        "etcd-events/lab1-k8s",
        "kube-apiserver/lab1-k8s",
        "kube-controller-manager/lab1-k8s",
        "kube-scheduler/lab1-k8s",
        "haproxy/lab1-k8s",
        "haproxy-gateway",
        "lvs",
    ]


@pytest.mark.parametrize(
    ("datacenter", "job", "targets"),
    [
        pytest.param(
            "lab1",
            "node",
            [
                ("198.18.0.31:9100", None, "lab1-r1", "lab1-lvs1"),
                ("198.18.0.95:9100", None, "lab1-r2", "lab1-lvs2"),
                ("198.18.0.11:9100", "lab1-k8s", "lab1-r1", "lab1-m1"),
                ("198.18.0.75:9100", "lab1-k8s", "lab1-r2", "lab1-m2"),
                ("198.18.0.12:9100", "lab1-k8s", "lab1-r1", "lab1-m3"),
                ("198.18.0.21:9100", "lab1-k8s", "lab1-r1", "lab1-w1"),
                ("198.18.0.85:9100", "lab1-k8s", "lab1-r2", "lab1-w2"),
            ],
            id="lab1-node-every-host",
        ),
        pytest.param(
            "lab2",
            "podlogs",
            [
                ("198.19.0.31:9661", None, "lab2-r1", "lab2-lvs1"),
                ("198.19.0.95:9661", None, "lab2-r2", "lab2-lvs2"),
                ("198.19.0.11:9661", "lab2-k8s", "lab2-r1", "lab2-m1"),
                ("198.19.0.75:9661", "lab2-k8s", "lab2-r2", "lab2-m2"),
                ("198.19.0.12:9661", "lab2-k8s", "lab2-r1", "lab2-m3"),
                ("198.19.0.21:9661", "lab2-k8s", "lab2-r1", "lab2-w1"),
                ("198.19.0.85:9661", "lab2-k8s", "lab2-r2", "lab2-w2"),
            ],
            id="lab2-podlogs-every-host",
        ),
        pytest.param(
            "lab1",
            "etcd/lab1-k8s",
            [
                ("198.18.0.11:2379", "lab1-k8s", "lab1-r1", "lab1-m1"),
                ("198.18.0.75:2379", "lab1-k8s", "lab1-r2", "lab1-m2"),
                ("198.18.0.12:2379", "lab1-k8s", "lab1-r1", "lab1-m3"),
            ],
            id="lab1-etcd-client-urls",
        ),
        pytest.param(
            "lab1",
            "etcd-events/lab1-k8s",
            [
                ("198.18.0.11:2383", "lab1-k8s", "lab1-r1", "lab1-m1"),
                ("198.18.0.75:2383", "lab1-k8s", "lab1-r2", "lab1-m2"),
                ("198.18.0.12:2383", "lab1-k8s", "lab1-r1", "lab1-m3"),
            ],
            id="lab1-events-etcd",
        ),
        pytest.param(
            "lab2",
            "kubelet/lab2-k8s",
            [
                ("198.19.0.11:10250", "lab2-k8s", "lab2-r1", "lab2-m1"),
                ("198.19.0.75:10250", "lab2-k8s", "lab2-r2", "lab2-m2"),
                ("198.19.0.12:10250", "lab2-k8s", "lab2-r1", "lab2-m3"),
                ("198.19.0.21:10250", "lab2-k8s", "lab2-r1", "lab2-w1"),
                ("198.19.0.85:10250", "lab2-k8s", "lab2-r2", "lab2-w2"),
            ],
            id="lab2-kubelet-every-node",
        ),
        pytest.param(
            "lab1",
            "kube-scheduler/lab1-k8s",
            [
                ("198.18.0.11:10259", "lab1-k8s", "lab1-r1", "lab1-m1"),
                ("198.18.0.75:10259", "lab1-k8s", "lab1-r2", "lab1-m2"),
                ("198.18.0.12:10259", "lab1-k8s", "lab1-r1", "lab1-m3"),
            ],
            id="lab1-scheduler",
        ),
        pytest.param(
            "lab1",
            "lvs",
            [
                ("198.18.0.31:9110", None, "lab1-r1", "lab1-lvs1"),
                ("198.18.0.95:9110", None, "lab1-r2", "lab1-lvs2"),
            ],
            id="lab1-lvs-directors",
        ),
    ],
)
def test_targets_of_a_job(plan, datacenter, job, targets):
    config = scrape_config(plan, datacenter)
    assert _targets(_job(config, job)) == targets
    assert {sc["labels"]["datacenter"] for sc in _job(config, job)["static_configs"]} == {datacenter}


@pytest.mark.parametrize(
    ("job", "tls"),
    [
        pytest.param(
            "kube-apiserver/lab1-k8s",
            {
                "ca_file": "/etc/prometheus/pki/lab1-k8s/ca.crt",
                "cert_file": "/etc/prometheus/pki/lab1-k8s/prometheus.crt",
                "key_file": "/etc/prometheus/pki/lab1-k8s/prometheus.key",
            },
            id="apiserver-verifies",
        ),
        pytest.param(
            "etcd-events/lab1-k8s",
            {
                "ca_file": "/etc/prometheus/pki/lab1-k8s/etcd-ca.crt",
                "cert_file": "/etc/prometheus/pki/lab1-k8s/etcd-client.crt",
                "key_file": "/etc/prometheus/pki/lab1-k8s/etcd-client.key",
            },
            id="etcd-events-etcd-ca",
        ),
        pytest.param(
            "kube-controller-manager/lab1-k8s",
            {
                "ca_file": "/etc/prometheus/pki/lab1-k8s/ca.crt",
                "cert_file": "/etc/prometheus/pki/lab1-k8s/prometheus.crt",
                "key_file": "/etc/prometheus/pki/lab1-k8s/prometheus.key",
                "insecure_skip_verify": True,
            },
            id="controller-manager-self-signed",
        ),
        pytest.param(
            "cadvisor/lab1-k8s",
            {
                "ca_file": "/etc/prometheus/pki/lab1-k8s/ca.crt",
                "cert_file": "/etc/prometheus/pki/lab1-k8s/prometheus.crt",
                "key_file": "/etc/prometheus/pki/lab1-k8s/prometheus.key",
                "insecure_skip_verify": True,
            },
            id="cadvisor-is-the-kubelets-server",
        ),
    ],
)
def test_control_plane_jobs_use_tls_with_a_client_certificate(plan, job, tls):
    scraped = _job(scrape_config(plan, "lab1"), job)
    assert (scraped["scheme"], scraped["tls_config"]) == ("https", tls)
    assert scraped["relabel_configs"] == [{"target_label": "job", "replacement": job.split("/")[0]}]


def test_every_https_job_carries_a_client_certificate(plan):
    jobs = scrape_config(plan, "lab1")["scrape_configs"]
    https = [j["job_name"] for j in jobs if j["scheme"] == "https"]
    assert https == [
        "kubelet/lab1-k8s",
        "cadvisor/lab1-k8s",
        "etcd/lab1-k8s",
        "etcd-events/lab1-k8s",
        "kube-apiserver/lab1-k8s",
        "kube-controller-manager/lab1-k8s",
        "kube-scheduler/lab1-k8s",
    ]
    assert [j["job_name"] for j in jobs if "cert_file" in j.get("tls_config", {})] == https


def _names(config):
    return [j["job_name"] for j in config["scrape_configs"]]


def test_haproxy_job_reads_the_masters_exporter_and_port_zero_drops_it(plan):
    config = scrape_config(plan, "lab1")
    assert _targets(_job(config, "haproxy/lab1-k8s")) == [
        ("198.18.0.11:8405", "lab1-k8s", "lab1-r1", "lab1-m1"),
        ("198.18.0.75:8405", "lab1-k8s", "lab1-r2", "lab1-m2"),
        ("198.18.0.12:8405", "lab1-k8s", "lab1-r1", "lab1-m3"),
    ]
    assert _job(config, "haproxy/lab1-k8s")["scheme"] == "http"
    assert "haproxy/lab1-k8s" not in _names(scrape_config(plan, "lab1", {"haproxy_exporter_port": 0}))


def test_podlogs_job_is_plain_http_and_port_zero_drops_it(plan):
    job = _job(scrape_config(plan, "lab1", {"podlogs_port": 9700}), "podlogs")
    assert (job["scheme"], [target[0] for target in _targets(job)][:2]) == (
        "http",
        ["198.18.0.31:9700", "198.18.0.95:9700"],
    )
    assert "relabel_configs" not in job
    assert "podlogs" not in _names(scrape_config(plan, "lab1", {"podlogs_port": 0}))


def test_haproxy_gateway_job_reads_the_ingress_nodes_exporter(plan):
    job = _job(scrape_config(plan, "lab2", {"haproxy_gateway_exporter_port": 9101}), "haproxy-gateway")
    assert (job["scheme"], _targets(job)) == (
        "http",
        [("198.19.0.21:9101", "lab2-k8s", "lab2-r1", "lab2-w1")],
    )
    assert "relabel_configs" not in job
    assert "haproxy-gateway" not in _names(scrape_config(plan, "lab2", {"haproxy_gateway_exporter_port": 0}))


def test_gateway_sync_job_reads_the_ingress_nodes_sync_only_with_a_port(plan):
    assert "gateway-sync" not in _names(scrape_config(plan, "lab2"))
    job = _job(scrape_config(plan, "lab2", {"gateway_sync_port": 9665}), "gateway-sync")
    assert (job["scheme"], _targets(job)) == (
        "http",
        [("198.19.0.21:9665", "lab2-k8s", "lab2-r1", "lab2-w1")],
    )
    assert "relabel_configs" not in job


def test_haproxy_gateway_job_needs_an_ingress_node(plan):
    bare = copy.deepcopy(plan)
    for host in bare["hosts"].values():
        (host.get("labels") or {}).pop("function", None)
    assert "haproxy-gateway" not in _names(scrape_config(bare, "lab1"))
    with pytest.raises(MonitoringError) as e:
        scrape_config(bare, "lab1", {"jobs": ["haproxy-gateway"]})
    assert str(e.value) == (
        "monitoring option jobs: role 'haproxy-gateway' has no target in datacenter 'lab1' "
        "(no host labelled function: ingress there, or haproxy_gateway_exporter_port is 0)"
    )


def test_plan_names_equal_the_gateway_and_consul_packages():
    assert scrape.INGRESS_FUNCTION == gateway.INGRESS_FUNCTION
    assert scrape.CONSUL_SERVER_ROLE == consul.SERVER_ROLE


def test_consul_jobs_only_with_a_port(plan):
    assert [n for n in _names(scrape_config(plan, "lab1")) if n.startswith("consul")] == []
    config = scrape_config(plan, "lab1", {"consul_https_port": 8501})
    assert _names(config)[-2:] == ["consul/server", "consul/client"]
    server = _job(config, "consul/server")
    assert {k: v for k, v in server.items() if k != "static_configs"} == {
        "job_name": "consul/server",
        "metrics_path": "/v1/agent/metrics",
        "params": {"format": ["prometheus"]},
        "scheme": "https",
        "authorization": {"type": "Bearer", "credentials_file": "/etc/prometheus/consul-token"},
        "tls_config": {
            "ca_file": "/etc/prometheus/pki/consul/ca.crt",
            "cert_file": "/etc/prometheus/pki/consul/prometheus.crt",
            "key_file": "/etc/prometheus/pki/consul/prometheus.key",
            "server_name": "server.lab1.consul",
        },
        "relabel_configs": [{"target_label": "job", "replacement": "consul"}],
    }
    assert _targets(server) == [
        ("198.18.0.11:8501", "lab1-k8s", "lab1-r1", "lab1-m1"),
        ("198.18.0.75:8501", "lab1-k8s", "lab1-r2", "lab1-m2"),
        ("198.18.0.12:8501", "lab1-k8s", "lab1-r1", "lab1-m3"),
    ]
    client = _job(config, "consul/client")
    assert client["tls_config"]["server_name"] == "client.lab1.consul"
    assert _targets(client) == [
        ("198.18.0.31:8501", None, "lab1-r1", "lab1-lvs1"),
        ("198.18.0.95:8501", None, "lab1-r2", "lab1-lvs2"),
        ("198.18.0.21:8501", "lab1-k8s", "lab1-r1", "lab1-w1"),
        ("198.18.0.85:8501", "lab1-k8s", "lab1-r2", "lab1-w2"),
    ]


def test_consul_jobs_take_the_consul_datacenter_domain_and_files(plan):
    renamed = copy.deepcopy(plan)
    renamed["datacenters"]["lab2"]["consul"]["datacenter"] = "bj2"
    options = {
        "consul_https_port": 443,
        "consul_domain": "sd.example",
        "consul_ca_file": "/p/ca.pem",
        "consul_cert_file": "/p/c.pem",
        "consul_key_file": "/p/k.pem",
        "consul_token_file": "/p/token",
    }
    job = _job(scrape_config(renamed, "lab2", options), "consul/client")
    assert (job["tls_config"], job["authorization"], _targets(job)[0][0]) == (
        {
            "ca_file": "/p/ca.pem",
            "cert_file": "/p/c.pem",
            "key_file": "/p/k.pem",
            "server_name": "client.bj2.sd.example",
        },
        {"type": "Bearer", "credentials_file": "/p/token"},
        "198.19.0.31:443",
    )


def test_default_ports_match_the_control_plane_manifests(plan):
    config = scrape_config(plan, "lab1")
    assert _targets(_job(config, "kube-controller-manager/lab1-k8s"))[0][0] == (
        f"198.18.0.11:{manifests.CONTROLLER_MANAGER_PORT}"
    )
    assert (
        _targets(_job(config, "kube-scheduler/lab1-k8s"))[0][0] == f"198.18.0.11:{manifests.SCHEDULER_PORT}"
    )


def test_global_section_and_rule_files(plan):
    config = scrape_config(plan, "lab2", {"scrape_interval": "30s", "rule_files": ["/r/a.yml"]})
    assert (config["global"], config["rule_files"]) == (
        {"scrape_interval": "30s", "evaluation_interval": "15s", "external_labels": {"datacenter": "lab2"}},
        ["/r/a.yml"],
    )


def test_config_text_is_deterministic_and_ordered(plan):
    text = config_text(scrape_config(plan, "lab1"))
    assert text == config_text(scrape_config(copy.deepcopy(plan), "lab1"))
    assert text.startswith(
        "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"
        "  external_labels:\n    datacenter: lab1\n"
        "rule_files:\n- /etc/prometheus/rules/*.yml\nscrape_configs:\n- job_name: prometheus\n"
    )


def test_monitoring_hosts_are_the_first_master_of_each_datacenter(plan):
    assert monitoring_hosts(plan) == ["lab1-m1", "lab2-m1"]


def test_monitoring_hosts_without_a_cluster_take_the_first_host(plan):
    bare = copy.deepcopy(plan)
    bare["datacenters"]["lab2"]["clusters"] = []
    assert monitoring_hosts(bare) == ["lab1-m1", "lab2-lvs1"]


@pytest.mark.parametrize(
    ("datacenter", "options", "message"),
    [
        pytest.param(
            "lab-1",
            {},
            r"datacenter 'lab-1' is not in the plan \(did you mean 'lab1'\?\); datacenters: lab1, lab2",
            id="unknown-datacenter",
        ),
        pytest.param(
            "lab1",
            {"node_exporter_prot": 9100},
            r"monitoring option 'node_exporter_prot' is unknown \(did you mean 'node_exporter_port'\?\)",
            id="unknown-option",
        ),
        pytest.param(
            "lab1",
            {"kubelet_port": 0},
            r"monitoring option kubelet_port: expected a port 1-65535, got 0",
            id="port-zero",
        ),
        pytest.param(
            "lab1",
            {"lvs_exporter_port": True},
            r"monitoring option lvs_exporter_port: expected a port 1-65535, got True",
            id="port-bool",
        ),
        pytest.param(
            "lab1",
            {"etcd_ca_file": "pki/ca.crt"},
            r"monitoring option etcd_ca_file: expected an absolute path, got 'pki/ca.crt'",
            id="relative-path",
        ),
        pytest.param(
            "lab1",
            {"scrape_interval": "0s"},
            r"monitoring option scrape_interval: expected a duration like 15s, 1m, got '0s'",
            id="zero-interval",
        ),
        pytest.param(
            "lab1",
            {"insecure_skip_verify_jobs": ["kube-sheduler"]},
            r"insecure_skip_verify_jobs: 'kube-sheduler' is no TLS job \(did you mean 'kube-scheduler'\?\)",
            id="skip-verify-unknown-job",
        ),
    ],
)
def test_bad_input_is_refused_by_name(plan, datacenter, options, message):
    with pytest.raises(MonitoringError, match=message):
        scrape_config(plan, datacenter, options)


# The node agents' jobs: every node of each cluster at its own port; signals each second
# (its timeout the same), the others at the global interval (no interval of their own).
@pytest.mark.parametrize(
    ("role", "port", "intervals"),
    [
        pytest.param("signals", 9200, {"scrape_interval": "1s", "scrape_timeout": "1s"}, id="signals"),
        pytest.param("netshaper", 9300, {}, id="netshaper"),
        pytest.param("overload", 9301, {}, id="overload"),
        pytest.param("crashkeeper", 9302, {}, id="crashkeeper"),
    ],
)
def test_a_node_agents_job_scrapes_every_node_of_the_cluster(plan, role, port, intervals):
    job = _job(scrape_config(plan, "lab2", {f"{role}_port": port}), f"{role}/lab2-k8s")
    assert {k: job[k] for k in ("scrape_interval", "scrape_timeout") if k in job} == intervals
    assert (job["scheme"], job["relabel_configs"]) == ("http", [{"target_label": "job", "replacement": role}])
    assert _targets(job) == [
        (f"198.19.0.11:{port}", "lab2-k8s", "lab2-r1", "lab2-m1"),
        (f"198.19.0.75:{port}", "lab2-k8s", "lab2-r2", "lab2-m2"),
        (f"198.19.0.12:{port}", "lab2-k8s", "lab2-r1", "lab2-m3"),
        (f"198.19.0.21:{port}", "lab2-k8s", "lab2-r1", "lab2-w1"),
        (f"198.19.0.85:{port}", "lab2-k8s", "lab2-r2", "lab2-w2"),
    ]


def test_only_the_signals_job_has_an_interval_of_its_own(plan):
    jobs = scrape_config(plan, "lab2")["scrape_configs"]
    assert [j["job_name"] for j in jobs if "scrape_interval" in j] == ["signals/lab2-k8s"]


@pytest.mark.parametrize(
    ("port", "left"),
    [
        pytest.param("netshaper_port", ["overload", "crashkeeper"], id="netshaper"),
        pytest.param("overload_port", ["netshaper", "crashkeeper"], id="overload"),
        pytest.param("crashkeeper_port", ["netshaper", "overload"], id="crashkeeper"),
    ],
)
def test_a_node_agents_port_of_0_drops_its_job(plan, port, left):
    names = [j["job_name"] for j in scrape_config(plan, "lab2", {port: 0})["scrape_configs"]]
    assert [n for n in names if n.endswith("/lab2-k8s")][:6] == [
        "kubelet/lab2-k8s",
        "cadvisor/lab2-k8s",
        "signals/lab2-k8s",
        *(f"{agent}/lab2-k8s" for agent in left),
        "etcd/lab2-k8s",
    ]


@pytest.mark.parametrize(
    ("jobs", "names"),
    [
        pytest.param(["node", "signals"], ["node", "signals/lab1-k8s"], id="two-roles"),
        pytest.param(["lvs", "prometheus"], ["prometheus", "lvs"], id="role-order-kept"),
    ],
)
def test_jobs_option_selects_roles(plan, jobs, names):
    assert [j["job_name"] for j in scrape_config(plan, "lab1", {"jobs": jobs})["scrape_configs"]] == names


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"jobs": ["haproxy"], "haproxy_exporter_port": 0},
            "monitoring option jobs: role 'haproxy' has no target in datacenter 'lab1' "
            "(haproxy_exporter_port is 0)",
            id="role-the-plan-lacks-haproxy",
        ),
        pytest.param(
            {"jobs": ["podlogs"], "podlogs_port": 0},
            "monitoring option jobs: role 'podlogs' has no target in datacenter 'lab1' (podlogs_port is 0)",
            id="role-the-plan-lacks-podlogs",
        ),
        pytest.param(
            {"jobs": ["netshaper"], "netshaper_port": 0},
            "monitoring option jobs: role 'netshaper' has no target in datacenter 'lab1' "
            "(netshaper_port is 0)",
            id="role-the-plan-lacks-netshaper",
        ),
        pytest.param(
            {"jobs": ["overload", "node"], "overload_port": 0},
            "monitoring option jobs: role 'overload' has no target in datacenter 'lab1' (overload_port is 0)",
            id="role-the-plan-lacks-overload",
        ),
        pytest.param(
            {"jobs": ["consul"]},
            "monitoring option jobs: role 'consul' has no target in datacenter 'lab1' "
            "(consul_https_port is 0, or the plan has no Consul servers there)",
            id="consul-without-port",
        ),
        pytest.param(
            {"jobs": ["node", "vault"]},
            "monitoring option jobs: 'vault' is no scrape role; roles: prometheus, node, podlogs, kubelet, "
            "cadvisor, signals, netshaper, overload, crashkeeper, etcd, etcd-events, kube-apiserver, "
            "kube-controller-manager, kube-scheduler, haproxy, haproxy-gateway, gateway-sync, lvs, lvs-sync, "
            "consul, consul-sync",
            id="unknown-role",
        ),
        pytest.param(
            {"jobs": ["kubelets"]},
            "monitoring option jobs: 'kubelets' is no scrape role (did you mean 'kubelet'?); roles: "
            "prometheus, node, podlogs, kubelet, cadvisor, signals, netshaper, overload, crashkeeper, "
            "etcd, etcd-events, kube-apiserver, kube-controller-manager, kube-scheduler, haproxy, "
            "haproxy-gateway, gateway-sync, lvs, lvs-sync, consul, consul-sync",
            id="misspelt-role",
        ),
        pytest.param(
            {"consul_domain": "Consul."},
            "monitoring option consul_domain: expected a DNS domain like consul, got 'Consul.'",
            id="consul-domain",
        ),
        pytest.param(
            {"consul_https_port": -1},
            "monitoring option consul_https_port: expected a port 0-65535, got -1",
            id="consul-port-negative",
        ),
        pytest.param(
            {"consul_token_file": "token"},
            "monitoring option consul_token_file: expected an absolute path, got 'token'",
            id="consul-token-relative",
        ),
        pytest.param(
            {"jobs": "node"},
            "monitoring option jobs: expected a list of roles, got 'node'",
            id="jobs-not-a-list",
        ),
        pytest.param(
            {"retention_time": "0d"},
            "monitoring option retention_time: expected a duration above 0 like 15d, 12h, 2w, got '0d'",
            id="retention-zero",
        ),
        pytest.param(
            {"retention_time": "0"},
            "monitoring option retention_time: expected a duration above 0 like 15d, 12h, 2w, got '0'",
            id="retention-zero-no-unit",
        ),
        pytest.param(
            {"retention_time": "15 days"},
            "monitoring option retention_time: expected a duration above 0 like 15d, 12h, 2w, got '15 days'",
            id="retention-words",
        ),
        pytest.param(
            {"retention_size": "0GB"},
            "monitoring option retention_size: expected a size above 0 like 512MB, 50GB, or '' for no limit, "
            "got '0GB'",
            id="retention-size-zero",
        ),
        pytest.param(
            {"signals_scrape_interval": "0s"},
            "monitoring option signals_scrape_interval: expected a duration like 15s, 1m, got '0s'",
            id="signals-interval-zero",
        ),
        pytest.param(
            {"consul_sync_port": 9664, "consul_sync_hosts": ["lab1-m9"]},
            "monitoring option consul_sync_hosts: host 'lab1-m9' is not in the plan's hosts",
            id="sync-host-not-in-plan",
        ),
        pytest.param(
            {"consul_sync_port": 9664, "consul_sync_hosts": "lab1-m1"},
            "monitoring option consul_sync_hosts: expected a list of host names, got 'lab1-m1'",
            id="sync-hosts-a-string",
        ),
        pytest.param(
            {"lvs_sync_port": 70000},
            "monitoring option lvs_sync_port: expected a port 0-65535, got 70000",
            id="lvs-sync-port-too-high",
        ),
        pytest.param(
            {"jobs": ["consul-sync"]},
            "monitoring option jobs: role 'consul-sync' has no target in datacenter 'lab1' "
            "(consul_sync_port is 0, or no host of consul_sync_hosts is there)",
            id="consul-sync-job-without-port",
        ),
        pytest.param(
            {"jobs": ["lvs-sync"]},
            "monitoring option jobs: role 'lvs-sync' has no target in datacenter 'lab1' "
            "(lvs_sync_port is 0, or the plan has no LVS directors there)",
            id="lvs-sync-job-without-port",
        ),
    ],
)
def test_bad_jobs_and_retention_are_refused_exactly(plan, options, message):
    with pytest.raises(MonitoringError) as e:
        scrape_config(plan, "lab1", options)
    assert str(e.value) == message


def test_sync_jobs_only_with_a_port(plan):
    assert [n for n in _names(scrape_config(plan, "lab1")) if n.endswith("-sync")] == []
    config = scrape_config(
        plan,
        "lab1",
        {"lvs_sync_port": 9658, "consul_sync_port": 9664, "consul_sync_hosts": ["lab2-m1", "lab1-m1"]},
    )
    assert _names(config)[-2:] == ["lvs-sync", "consul-sync"]
    lvs_sync, consul_sync = _job(config, "lvs-sync"), _job(config, "consul-sync")
    assert (lvs_sync["scheme"], _targets(lvs_sync)) == (
        "http",
        [
            ("198.18.0.31:9658", None, "lab1-r1", "lab1-lvs1"),
            ("198.18.0.95:9658", None, "lab1-r2", "lab1-lvs2"),
        ],
    )
    # the sync host of lab2 is left out of lab1's Prometheus
    assert (consul_sync["scheme"], _targets(consul_sync)) == (
        "http",
        [("198.18.0.11:9664", "lab1-k8s", "lab1-r1", "lab1-m1")],
    )
    assert "relabel_configs" not in consul_sync
    assert _names(scrape_config(plan, "lab1", {"consul_sync_port": 9664})) == _names(
        scrape_config(plan, "lab1")
    )


def test_lvs_role_the_plan_lacks(plan):
    bare = copy.deepcopy(plan)
    bare["datacenters"]["lab2"]["lvs"] = {}
    with pytest.raises(MonitoringError) as e:
        scrape_config(bare, "lab2", {"jobs": ["lvs"]})
    assert str(e.value) == (
        "monitoring option jobs: role 'lvs' has no target in datacenter 'lab2' "
        "(the plan has no LVS directors there)"
    )


@pytest.mark.parametrize(
    ("options", "args"),
    [
        pytest.param({}, ["--storage.tsdb.retention.time=15d"], id="default"),
        pytest.param(
            {"retention_time": "1y2w", "retention_size": "50GB"},
            ["--storage.tsdb.retention.time=1y2w", "--storage.tsdb.retention.size=50GB"],
            id="time-and-size",
        ),
    ],
)
def test_server_args(options, args):
    assert server_args(options) == args


# ---- the client certificate files, from the controller's PKI ---------------------------

P = "/etc/prometheus/pki/lab1-k8s"
LAB1_CLIENT_FILES = [
    {"pki": "clusters", "src": "lab1-k8s/ca.crt", "dest": f"{P}/ca.crt", "secret": False},
    {"pki": "clusters", "src": "lab1-k8s/etcd/ca.crt", "dest": f"{P}/etcd-ca.crt", "secret": False},
    {
        "pki": "clusters",
        "src": "lab1-k8s/prometheus-etcd-client.crt",
        "dest": f"{P}/etcd-client.crt",
        "secret": False,
    },
    {
        "pki": "clusters",
        "src": "lab1-k8s/prometheus-etcd-client.key",
        "dest": f"{P}/etcd-client.key",
        "secret": True,
    },
    {"pki": "clusters", "src": "lab1-k8s/prometheus.crt", "dest": f"{P}/prometheus.crt", "secret": False},
    {"pki": "clusters", "src": "lab1-k8s/prometheus.key", "dest": f"{P}/prometheus.key", "secret": True},
]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, LAB1_CLIENT_FILES, id="every-job"),
        pytest.param({"jobs": ["node", "signals", "lvs"]}, [], id="no-tls-job"),
        pytest.param({"jobs": ["etcd-events"]}, LAB1_CLIENT_FILES[1:4], id="etcd-only"),
        pytest.param(
            {"jobs": ["kube-apiserver"], "kubernetes_key_file": "/k/{cluster}.key"},
            [
                LAB1_CLIENT_FILES[0],
                LAB1_CLIENT_FILES[4],
                {
                    "pki": "clusters",
                    "src": "lab1-k8s/prometheus.key",
                    "dest": "/k/lab1-k8s.key",
                    "secret": True,
                },
            ],
            id="own-path",
        ),
        pytest.param(
            {"jobs": ["consul"], "consul_https_port": 8501},
            [
                {
                    "pki": "consul",
                    "src": "ca.crt",
                    "dest": "/etc/prometheus/pki/consul/ca.crt",
                    "secret": False,
                },
                {
                    "pki": "consul",
                    "src": "prometheus.crt",
                    "dest": "/etc/prometheus/pki/consul/prometheus.crt",
                    "secret": False,
                },
                {
                    "pki": "consul",
                    "src": "prometheus.key",
                    "dest": "/etc/prometheus/pki/consul/prometheus.key",
                    "secret": True,
                },
            ],
            id="consul-from-the-consul-pki",
        ),
    ],
)
def test_client_files_of_lab1(plan, options, expected):
    assert client_files(plan, "lab1", options) == expected


def test_client_files_come_from_certificates_the_pki_plan_issues(plan):
    cluster = plan["clusters"]["lab1-k8s"]
    issued = {
        f"lab1-k8s/{c['name']}.{ext}"
        for c in pki_plan.pki_plan(cluster, settings_from({}))["certs"]
        for ext in ("crt", "key")
    }
    issued |= {f"lab1-k8s/{ca['name']}.crt" for ca in pki_plan.pki_plan(cluster, settings_from({}))["cas"]}
    assert sorted(f["src"] for f in client_files(plan, "lab1") if f["src"] not in issued) == []


def test_client_files_refuse_one_path_for_two_clusters(plan):
    two = copy.deepcopy(plan)
    other = copy.deepcopy(two["clusters"]["lab1-k8s"])
    other["name"] = "lab1-b"
    two["clusters"]["lab1-b"] = other
    two["datacenters"]["lab1"]["clusters"] = ["lab1-k8s", "lab1-b"]
    with pytest.raises(MonitoringError) as caught:
        client_files(two, "lab1", {"etcd_key_file": "/etc/prometheus/etcd.key"})
    assert str(caught.value) == (
        "monitoring option etcd_key_file: '/etc/prometheus/etcd.key' is the same file for "
        "lab1-b/prometheus-etcd-client.key and lab1-k8s/prometheus-etcd-client.key; put {cluster} in it"
    )


def test_cadvisor_reads_each_kubelets_cadvisor_path_and_follows_the_kubelets_verification(plan):
    """Its targets are the kubelet job's (the same server); only the path differs. Verified
    when the kubelet's certificate is (kubelet left out of insecure_skip_verify_jobs)."""
    config = scrape_config(plan, "lab1")
    kubelet, cadvisor = _job(config, "kubelet/lab1-k8s"), _job(config, "cadvisor/lab1-k8s")
    assert (cadvisor["metrics_path"], "metrics_path" in kubelet) == ("/metrics/cadvisor", False)
    assert (
        _targets(cadvisor)
        == _targets(kubelet)
        == [
            ("198.18.0.11:10250", "lab1-k8s", "lab1-r1", "lab1-m1"),
            ("198.18.0.75:10250", "lab1-k8s", "lab1-r2", "lab1-m2"),
            ("198.18.0.12:10250", "lab1-k8s", "lab1-r1", "lab1-m3"),
            ("198.18.0.21:10250", "lab1-k8s", "lab1-r1", "lab1-w1"),
            ("198.18.0.85:10250", "lab1-k8s", "lab1-r2", "lab1-w2"),
        ]
    )
    verified = scrape_config(plan, "lab1", {"insecure_skip_verify_jobs": ["kube-scheduler"]})
    assert "insecure_skip_verify" not in _job(verified, "cadvisor/lab1-k8s")["tls_config"]
