"""One Consul server on loopback for the tests of ``cloud58-consul-sync`` and its role: ACLs
default-deny, the API on HTTPS only verifying the client's certificate (a throwaway CA), as the
consul role runs the servers; the ACL bootstrap and a token of a given policy for the sync."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import urllib.error
import urllib.request

from cloud58_lab import programs
from cloud58_lab.consulapi import single_server_config
from cloud58_lab.netlab import free_ports, wait_until
from cloud58_lab.pki import CertificateAuthority

# what the sync may write: its k8s-<cluster> nodes and every service on them
SYNC_RULES = 'node_prefix "k8s-" { policy = "write" }\nservice_prefix "" { policy = "write" }\n'


class Consul:
    """One Consul server on loopback: ACLs default-deny, the API on HTTPS only, verifying
    the client's certificate (a throwaway CA), as the consul role runs the servers."""

    def __init__(self, workdir, datacenter, node="c58csync-s1", ca_name="cloud58-consul-sync-test-ca"):
        self.workdir = workdir
        self.https, serf, server = free_ports(3)
        self.address = f"https://127.0.0.1:{self.https}"
        self.ca = CertificateAuthority(ca_name)
        self.ca_file = workdir / "ca.crt"
        self.ca_file.write_bytes(self.ca.pair.cert_pem)
        cert, key = self.ca.issue(
            f"server.{datacenter}.consul",
            dns_names=(f"server.{datacenter}.consul",),
            ip_addresses=("127.0.0.1",),
            server=True,
            client=True,
        ).write(workdir, "server")
        # one client certificate for the sync, one for the test
        self.sync_cert = self.ca.issue("cloud58-consul-sync", client=True).write(workdir, "sync")
        test_cert = self.ca.issue("cloud58-consul-sync-test", client=True).write(workdir, "test")
        self.tls = ssl.create_default_context(cafile=str(self.ca_file))
        self.tls.load_cert_chain(*(str(f) for f in test_cert))
        self.config = single_server_config(
            node,
            datacenter,
            workdir / "data",
            {"https": self.https, "serf_lan": serf, "server": server},
            acl=True,
            tls={
                "defaults": {
                    "ca_file": str(self.ca_file),
                    "cert_file": str(cert),
                    "key_file": str(key),
                    "verify_incoming": True,
                    "verify_outgoing": True,
                }
            },
            log_level="info",
        )
        self.proc = None
        self.management = ""

    def start(self):
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        path = self.workdir / "consul.json"
        path.write_text(json.dumps(self.config))
        with open(self.workdir / "consul.log", "ab") as log:
            self.proc = subprocess.Popen(
                [programs.path("consul"), "agent", f"-config-file={path}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log(self):
        path = self.workdir / "consul.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""

    def request(self, method, path, body=None, token=None):
        """``(status, headers, decoded JSON or text)``; ``token`` None: the management token."""
        token = self.management if token is None else token
        req = urllib.request.Request(
            self.address + path, data=json.dumps(body).encode() if body is not None else None, method=method
        )
        if token:
            req.add_header("X-Consul-Token", token)
        try:
            with urllib.request.urlopen(req, timeout=60, context=self.tls) as resp:
                status, headers, raw = resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, headers, raw = e.code, e.headers, e.read().decode()
        try:
            return status, headers, json.loads(raw) if raw else None
        except ValueError:
            return status, headers, raw.strip()

    def instances(self, service="web"):
        """``{ID: (node, address, port, tags, status, gone-marked)}`` of ``service``."""
        status, _, entries = self.request("GET", f"/v1/health/service/{service}")
        assert status == 200, entries
        out = {}
        for e in entries:
            svc = e["Service"]
            checks = [c["Status"] for c in e["Checks"]]
            out[svc["ID"]] = (
                e["Node"]["Node"],
                svc["Address"],
                svc["Port"],
                svc["Tags"],
                checks[0] if len(checks) == 1 else checks,
                "cloud58-sync-gone" in (svc.get("Meta") or {}),
            )
        return out

    def bootstrap(self, wait):
        """Wait (at most ``wait`` seconds) for the ACL bootstrap and keep the management token."""

        def attempt():
            try:
                status, _, value = self.request("PUT", "/v1/acl/bootstrap", token="")
            except OSError:
                return None
            return value["SecretID"] if status == 200 else None

        self.management = wait_until(attempt, wait, what="ACL bootstrap")

    def sync_token(self, rules=SYNC_RULES, name="cloud58-sync"):
        """A new token of a new policy ``name`` with ``rules``: ``(policy ID, SecretID)``."""
        status, _, policy = self.request("PUT", "/v1/acl/policy", {"Name": name, "Rules": rules})
        assert status == 200, policy
        status, _, token = self.request(
            "PUT", "/v1/acl/token", {"Description": "cloud58-consul-sync", "Policies": [{"ID": policy["ID"]}]}
        )
        assert status == 200, token
        return policy["ID"], token["SecretID"]
