"""Pebble, the ACME test CA (Debian's pebble package), in a simulated
Internet (tests/netsim.py), as Let's Encrypt would be on the real one: it
validates HTTP-01 challenges by connecting to port 80 of the address a
name resolves to. Its DNS server is pebble-challtestsrv in the same
namespace, answering every A query with the co-op's public address.

Pebble's own HTTPS listener gets a certificate from a small CA made here
(ca_file, for WARREN_ACME_CA_FILE); the certificates it issues chain to
its own random root (root_pem(), from its management interface). Nothing
it keeps survives stop().
"""
import json
import subprocess
import time
from pathlib import Path

import requests

ACME_PORT, MANAGEMENT_PORT, DNS_PORT = 14000, 15000, 8053


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Pebble:
    """Start with .start(); directory is the ACME directory URL."""

    def __init__(self, internet, folder: Path, public_ip: str):
        self.internet, self.folder, self.public_ip = internet, Path(folder), public_ip
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca_file = str(self.folder / "listener-ca.pem")
        self.processes = []

    @property
    def directory(self) -> str:
        return f"https://{self.internet.client_ip}:{ACME_PORT}/dir"

    def _listener_certificate(self) -> None:
        folder, address = self.folder, self.internet.client_ip
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-days", "2", "-subj", "/CN=pebble listener CA", "-keyout", f"{folder}/ca.key",
                 "-out", self.ca_file)
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-subj", f"/CN={address}", "-keyout", f"{folder}/listener.key",
                 "-out", f"{folder}/listener.csr")
        (folder / "san.ext").write_text(f"subjectAltName=IP:{address}\n")
        _openssl("x509", "-req", "-in", f"{folder}/listener.csr", "-CA", self.ca_file,
                 "-CAkey", f"{folder}/ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", f"{folder}/san.ext", "-out", f"{folder}/listener.pem")

    def start(self) -> "Pebble":
        if not Path(self.ca_file).exists():
            self._listener_certificate()
        address = self.internet.client_ip
        config = {"pebble": {
            "listenAddress": f"{address}:{ACME_PORT}",
            "managementListenAddress": f"{address}:{MANAGEMENT_PORT}",
            "certificate": str(self.folder / "listener.pem"),
            "privateKey": str(self.folder / "listener.key"),
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
            "externalAccountBindingRequired": False}}
        (self.folder / "pebble.json").write_text(json.dumps(config))
        log = open(self.folder / "pebble.log", "a")
        self.processes = [
            self.internet.popen("pebble-challtestsrv", "-dns01", f"127.0.0.1:{DNS_PORT}",
                                "-defaultIPv4", self.public_ip, "-defaultIPv6", "",
                                "-http01", "", "-https01", "", "-tlsalpn01", "",
                                "-management", "127.0.0.1:8055", stdout=log, stderr=log),
            self.internet.popen("env", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0",
                                "pebble", "-config", str(self.folder / "pebble.json"),
                                "-dnsserver", f"127.0.0.1:{DNS_PORT}", "-strict=false",
                                stdout=log, stderr=log)]
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(self.directory, verify=self.ca_file, timeout=2).raise_for_status()
                return self
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError("pebble did not start: "
                                       + (self.folder / "pebble.log").read_text()[-2000:])
                time.sleep(0.2)

    def root_pem(self) -> str:
        """The root the certificates it issues chain to."""
        url = f"https://{self.internet.client_ip}:{MANAGEMENT_PORT}/roots/0"
        return requests.get(url, verify=self.ca_file, timeout=5).text

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes = []
