"""The public DNS for tests: a second named inside a simulated Internet
(tests/netsim.py), authoritative for the zones of members' own domains
(e.g. their-domain.test). A test changes its records with TSIG-signed
updates, the way a member changes records at their DNS provider, and
Warren asks it as its public resolver:

    with Internet() as internet:
        public = PublicDns(internet, tmp_path, ["their-domain.test"]).start()
        settings = Settings(settings, public_resolvers=public.resolvers)
        public.txt("_warren-challenge.www.their-domain.test", "warren-verify=...")
        public.set("www.their-domain.test", "A", internet.host_ip)   # e.g. for an ingress
        public.remove("_warren-challenge.www.their-domain.test")

It listens on the namespace's address, port 53, and reaches nothing
outside the namespace (no recursion, no notify, no transfers).
"""
import base64
import secrets
import subprocess
import time
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

KEY_NAME = "public-dns-test"
TTL = 60


class PublicDns:
    """A named authoritative for `zones` at internet.client_ip:53."""

    def __init__(self, internet, folder: Path, zones=("their-domain.test",)):
        self.internet = internet
        self.folder = Path(folder)
        self.zones = tuple(zones)
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return self.internet.client_ip

    @property
    def resolvers(self) -> tuple[str, ...]:
        """The value of WARREN_PUBLIC_RESOLVERS that makes Warren ask this server."""
        return (self.address,)

    def _config(self) -> str:
        zones = "".join(f"""
zone "{zone}" {{
    type primary;
    file "{self.folder}/db.{zone}";
    update-policy {{ grant {KEY_NAME} zonesub ANY; }};
}};""" for zone in self.zones)
        return f"""options {{
    directory "{self.folder}";
    pid-file "{self.folder}/named.pid";
    session-keyfile "{self.folder}/session.key";
    managed-keys-directory "{self.folder}";
    listen-on port 53 {{ {self.address}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
    allow-transfer {{ none; }};
}};
key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{self.secret}"; }};
{zones}
"""

    def _zone_file(self, zone: str) -> str:
        return (f"$ORIGIN {zone}.\n$TTL {TTL}\n"
                f"@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 900 604800 {TTL}\n"
                f"  IN NS ns1.{zone}.\nns1 IN A {self.address}\n")

    def start(self) -> "PublicDns":
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "named.conf"
        conf.write_text(self._config())
        for zone in self.zones:
            (self.folder / f"db.{zone}").write_text(self._zone_file(zone))
        subprocess.run(["named-checkconf", str(conf)], check=True)
        log = open(self.folder / "named.log", "w")
        # -g: foreground, logging to stderr (into named.log); run as root inside the namespace.
        self.process = self.internet.popen("named", "-4", "-g", "-c", str(conf),
                                           stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the public DNS did not start: "
                                   + (self.folder / "named.log").read_text()[-3000:])
            if self._answers(self.zones[0]):
                return self
            time.sleep(0.1)
        raise RuntimeError("the public DNS does not answer: "
                           + (self.folder / "named.log").read_text()[-3000:])

    def _answers(self, zone: str) -> bool:
        try:
            response = dns.query.udp(dns.message.make_query(zone, "SOA"), self.address, timeout=0.5)
        except Exception:
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _zone_of(self, name: str) -> str:
        found = [zone for zone in self.zones
                 if dns.name.from_text(name).is_subdomain(dns.name.from_text(zone))]
        if not found:
            raise ValueError(f"{name} is in none of {self.zones}")
        return max(found, key=len)

    def _update(self, name: str, change) -> None:
        update = dns.update.UpdateMessage(
            self._zone_of(name), keyring=dns.tsigkeyring.from_text(
                {KEY_NAME: ("hmac-sha256", self.secret)}),
            keyname=KEY_NAME, keyalgorithm="hmac-sha256")
        change(update, dns.name.from_text(name))
        response = dns.query.tcp(update, self.address, timeout=5)
        assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())

    def set(self, name: str, rdtype: str, *values: str, ttl: int = TTL) -> None:
        """Make these the records of one type at a name (replacing any)."""
        self._update(name, lambda update, owner: update.replace(owner, ttl, rdtype, *values))

    def txt(self, name: str, *texts: str) -> None:
        """Make these the TXT strings at a name."""
        self.set(name, "TXT", *(f'"{text}"' for text in texts))

    def cname(self, name: str, target: str) -> None:
        """Point a name at another with a CNAME."""
        self.set(name, "CNAME", target.rstrip(".") + ".")

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Delete the records of one type at a name (every record without a type)."""
        self._update(name, lambda update, owner: update.delete(owner, rdtype)
                     if rdtype else update.delete(owner))
