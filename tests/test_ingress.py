"""The ingress proxy end to end: real HAProxy on the simulated Internet's
host address (started by ingress/haproxy.sh), real certificates from
pebble (tests/acme_ca.py) through HTTP-01 answered by the proxy, real
LXD instances behind it, and every client in the simulated Internet.

One terminating site (busybox httpd) and one passthrough site (a TLS
server in a Debian container) share one test, which walks through what
a member and a visitor see: the page with a verified chain and the
client's address, the redirect, the 404 for names nobody owns, the 421
for a Host that is not the SNI, an open download surviving another
site's route change, a renewal served without a restart, a proxy
restart, and the delete that takes route and certificate away. Issuance
failure and Warren's own host name need no instance and run on rows."""
import re
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from app import acme_client, certificates, ingress, lxd
from app.config import Settings
from app.store import get_db
from conftest import post_form
from proxy import Proxy, curl
from support import CSRF, KEY, advance, instance_row, launch, member_instance, post_action, run_in, \
    wait_gone, wait_until

pytestmark = pytest.mark.slow

# busybox httpd: a page, the forwarded headers it sees, and a slow stream.
PAGE = "<h1>alice's page</h1>\n"
HEADERS_CGI = ('#!/bin/sh\necho "Content-Type: text/plain"\necho\n'
               'echo "xff=$HTTP_X_FORWARDED_FOR proto=$HTTP_X_FORWARDED_PROTO"\n')
STREAM_CGI = ('#!/bin/sh\necho "Content-Type: text/plain"\necho\n'
              'for i in 1 2 3 4 5 6; do echo "line $i"; sleep 1; done\n')

# In the Debian container: its own TLS on 443 (a self-signed certificate
# made there), plain HTTP on 80.
TLS_SERVER = """
import http.server, ssl, threading
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"bob's own " + (b"tls" if isinstance(self.connection, ssl.SSLSocket) else b"http")
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
plain = http.server.ThreadingHTTPServer(("0.0.0.0", 80), Page)
threading.Thread(target=plain.serve_forever, daemon=True).start()
secure = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Page)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/root/site.pem")
secure.socket = context.wrap_socket(secure.socket, server_side=True)
secure.serve_forever()
"""


@pytest.fixture
def stack(app, internet, tmp_path):
    """Websites on the Internet's host address: the proxy running, pebble
    up, certificates from it. Yields (pebble, proxy, root certificate file)."""
    from acme_ca import Pebble
    pebble = Pebble(internet, tmp_path / "pebble", internet.host_ip).start()
    app.config["WARREN"] = Settings(app.config["WARREN"], ingress_address=internet.host_ip,
                                    ingress_dir=str(tmp_path / "ingress"),
                                    acme_directory=pebble.directory, acme_ca_file=pebble.ca_file)
    proxy = Proxy(app.config["WARREN"], tmp_path)
    proxy.run("start")
    root = tmp_path / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    yield pebble, proxy, root
    proxy.run("stop")
    pebble.stop()


def served_serial(internet, hostname: str) -> str:
    """The serial of the certificate the proxy shows for a name (SNI)."""
    shown = internet.run("sh", "-c", f"openssl s_client -connect {internet.host_ip}:443 "
                         f"-servername {hostname} </dev/null 2>/dev/null | openssl x509 -noout "
                         "-serial -subject")
    return shown.stdout.strip()


def certificate_row(app, hostname: str) -> dict | None:
    with app.app_context():
        return certificates.of_hostname(get_db(), hostname)


def publish(client, location: str, mode: str, port: str = "80"):
    return post_form(client, location, {"mode": mode, "port": port}, url=location + "/site",
                     expect=303)


def test_sites_are_served_by_name_with_certificates_and_go_with_the_instance(
        app, stack, worker, members, debian_image, settings, internet, fixed_clock, tmp_path):
    pebble, proxy, root = stack
    alice, bob = members(), members()
    location, progress = launch(alice, name="web")
    web = progress["fqdn"]
    container = member_instance(settings, alice, "web")
    for path, text, mode in (("/www/index.html", PAGE, 0o644),
                             ("/www/cgi-bin/headers", HEADERS_CGI, 0o755),
                             ("/www/cgi-bin/stream", STREAM_CGI, 0o755)):
        lxd.push_file(container, path, text, mode, directory_mode=0o755)
    run_in(container, "sh", "-c", "httpd -p 80 -h /www </dev/null >/dev/null 2>&1")

    # Published: the route answers within a second, the certificate follows.
    started = time.monotonic()
    publish(alice, location, "terminate")
    wait_until(lambda: "301" in curl(internet, f"http://{web}/", "-o", "/dev/null",
                                     "-w", "%{http_code}").stdout, timeout=10, step=0.05,
               message="the route")
    routed = time.monotonic() - started
    wait_until(lambda: (certificate_row(app, web) or {}).get("state") == "valid", timeout=60,
               message="the certificate")
    print(f"published -> routed {routed:.2f} s, certificate {time.monotonic() - started:.2f} s")
    assert routed < 1.0
    page = curl(internet, f"https://{web}/", "--cacert", str(root))
    assert page.stdout == PAGE, page.stderr  # the chain verifies against pebble's root
    seen = curl(internet, f"https://{web}/cgi-bin/headers", "--cacert", str(root)).stdout
    assert seen.strip() == f"xff={internet.client_ip} proto=https"
    redirect = curl(internet, f"http://{web}/x?y=1", "-o", "/dev/null", "-w", "%{redirect_url}")
    assert redirect.stdout == f"https://{web}/x?y=1"
    page_html = alice.get(location).get_data(as_text=True)
    assert f"https://{web}/" in page_html and "valid until" in page_html

    # Names nobody owns, and a Host that is not the connection's SNI.
    other = f"nobody.{alice.username}.{settings.dns_zone}"
    for url in (f"http://{other}/", f"https://{other}/"):
        answer = curl(internet, url, "-k", "-w", "%{http_code}")
        assert answer.stdout.endswith("404") and "No site here" in answer.stdout
    misdirected = curl(internet, f"https://{web}/", "--cacert", str(root), "-H", f"Host: {other}",
                       "-w", "%{http_code}")
    assert misdirected.stdout.endswith("421") and PAGE not in misdirected.stdout

    # Passthrough: bob's own server holds its certificate; port 80 reaches it too.
    bob_location, bob_progress = launch(bob, name="tls", image=debian_image, keys=KEY)
    box = bob_progress["fqdn"]
    tls = member_instance(settings, bob, "tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", f"/CN={box}", "-keyout", tmp_path / "bob.key",
                    "-out", tmp_path / "bob.crt"], check=True, capture_output=True)
    lxd.push_file(tls, "/root/site.pem", (tmp_path / "bob.crt").read_text()
                  + (tmp_path / "bob.key").read_text())
    lxd.push_file(tls, "/root/server.py", TLS_SERVER)
    run_in(tls, "sh", "-c", "setsid python3 /root/server.py </dev/null >/dev/null 2>&1 &")

    # An open download from alice's site survives bob's route appearing.
    stream = internet.popen("curl", "-sS", "--max-time", "20", "--cacert", str(root), "--resolve",
                            f"{web}:443:{internet.host_ip}", f"https://{web}/cgi-bin/stream")
    time.sleep(1.5)
    publish(bob, bob_location, "passthrough")
    wait_until(lambda: f"CN = {box}" in served_serial(internet, box), timeout=10, step=0.1,
               message="bob's own certificate through the proxy")
    assert curl(internet, f"https://{box}/", "-k").stdout == "bob's own tls"
    assert curl(internet, f"http://{box}/").stdout == "bob's own http"
    out, err = stream.communicate(timeout=20)
    assert out.splitlines() == [f"line {n}" for n in range(1, 7)], err
    assert certificate_row(app, box) is None  # passthrough: no certificate of ours

    # Files: owner-only, in an owner-only directory.
    files = ingress.paths(app.config["WARREN"])
    cert_file = Path(ingress.certificate_path(app.config["WARREN"], web))
    assert stat.S_IMODE(cert_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(files.certs).stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(files.account_key).stat().st_mode) == 0o600

    # Renewal: 29 days before expiry the next pass replaces it, served at once.
    before = served_serial(internet, web)
    row = certificate_row(app, web)
    fixed_clock.set_now(acme_client.facts(cert_file.read_text()).not_after)
    advance(fixed_clock, days=-29)
    with app.app_context():
        lines = certificates.refresh(get_db(), app.config["WARREN"])
    assert any("issued" in line for line in lines), lines
    assert certificate_row(app, web)["serial"] != row["serial"]
    after = served_serial(internet, web)
    assert after != before and certificate_row(app, web)["serial"] in after.replace(":", "")
    fixed_clock.set_now(None)

    # A reload (bin/up again) and a restart of the proxy come back with the
    # routes and the certificate, from its files.
    proxy.run("reload")
    wait_until(lambda: served_serial(internet, web) == after, timeout=10, step=0.1,
               message="the certificate after a reload")
    proxy.run("stop")
    proxy.run("start")
    assert served_serial(internet, web) == after
    assert curl(internet, f"https://{web}/", "--cacert", str(root)).stdout == PAGE

    # Deleting the instance: the name gets the 404, its certificate is gone.
    post_action(alice, location, "delete")
    wait_gone(alice, location)
    assert "No site here" in curl(internet, f"https://{web}/", "-k").stdout
    assert "no site here" in served_serial(internet, web)
    with app.app_context():
        certificates.refresh(get_db(), app.config["WARREN"])
    assert certificate_row(app, web) is None and not cert_file.exists()
    assert curl(internet, f"https://{box}/", "-k").stdout == "bob's own tls"  # bob's untouched


def test_a_custom_domain_is_served_only_once_proven_and_a_published_name_leads_to_the_proxy(
        app, stack, worker, members, settings, internet, tmp_path, fixed_clock, dig):
    from publicdns import PublicDns
    _pebble, _proxy, root = stack
    public = PublicDns(internet, tmp_path / "public-dns", ["their-domain.test"]).start()
    app.config["WARREN"] = Settings(app.config["WARREN"], public_resolvers=public.resolvers)
    try:
        alice = members()
        location, progress = launch(alice, name="site")
        web, private = progress["fqdn"], progress["ipv4"]
        container = member_instance(settings, alice, "site")
        lxd.push_file(container, "/www/index.html", PAGE, 0o644, directory_mode=0o755)
        run_in(container, "sh", "-c", "httpd -p 80 -h /www </dev/null >/dev/null 2>&1")
        assert dig(web) == [private]  # not published: the instance's own address

        # Published, the name leads visitors (and the CA) to the proxy.
        publish(alice, location, "terminate")
        wait_until(lambda: dig(web) == [internet.host_ip], timeout=10, step=0.1,
                   message="the name pointing at the proxy")

        # A custom domain is not served before its proof is published.
        domain = f"www-{alice.username}.their-domain.test"
        instance_id = location.rsplit("/", 1)[1]
        post_form(alice, "/domains", {"hostname": domain, "instance": instance_id}, expect=303)
        public.set(domain, "A", internet.host_ip)  # where the member points it, no proof yet
        refused = curl(internet, f"https://{domain}/", "-k", "-w", "%{http_code}").stdout
        assert refused.endswith("404") and PAGE not in refused

        # The proof (a CNAME to the instance's name) is found: routed, certified, served.
        public.remove(domain, "A")
        public.cname(domain, web)
        advance(fixed_clock, seconds=60)
        domain_id = re.search(r'id="domain-([0-9]+)"', alice.get("/domains").get_data(as_text=True))[1]
        post_form(alice, "/domains", {}, url=f"/domains/{domain_id}/check", expect=303)
        wait_until(lambda: (certificate_row(app, domain) or {}).get("state") == "valid",
                   timeout=60, message="the custom domain's certificate")
        wait_until(lambda: curl(internet, f"https://{domain}/", "--cacert", str(root)).stdout == PAGE,
                   timeout=10, step=0.1, message="the custom domain served")
        assert f"CN = {domain}" in served_serial(internet, domain)

        # Removed, it is no longer routed; unpublished, the name is the instance's again.
        post_form(alice, "/domains", {}, url=f"/domains/{domain_id}/delete", expect=303)
        wait_until(lambda: "No site here" in curl(internet, f"https://{domain}/", "-k").stdout,
                   timeout=10, step=0.1, message="the custom domain's route gone")
        post_form(alice, location, {}, url=location + "/site/delete", expect=303)
        wait_until(lambda: dig(web) == [private], timeout=10, step=0.1,
                   message="the name back on the instance")
    finally:
        public.stop()


def test_a_failed_issuance_is_shown_retried_with_backoff_and_succeeds_later(
        app, stack, make_user, internet, fixed_clock):
    pebble, _proxy, root = stack
    alice = make_user("alice")
    with app.test_request_context():
        db = get_db()
        settings = app.config["WARREN"]
        # A row with the page server on the host's loopback (no instance needed to issue).
        web = instance_row(db, alice["id"], "web", "ready", "127.0.0.1")
        fqdn = db["instances"].get(web)["fqdn"]
        db["sites"].insert({"instance_id": web, "mode": "terminate", "port": settings.listen_port,
                            "created_at": "x"})
        ingress.sync(db, settings)
        pebble.stop()  # the ACME directory is down
        lines = certificates.refresh(db, settings)
        row = certificates.of_hostname(db, fqdn)
        assert row["state"] == "failed" and "not reachable" in row["error"], lines
        first_retry = row["next_attempt_at"]
        assert certificates.refresh(db, settings) == []  # not due yet: nothing is tried
        advance(fixed_clock, minutes=1, seconds=1)
        certificates.refresh(db, settings)
        row = certificates.of_hostname(db, fqdn)
        assert row["attempts"] == 2 and row["next_attempt_at"] > first_retry  # 2 minutes now
        pebble.start()
        advance(fixed_clock, minutes=2, seconds=1)
        certificates.refresh(db, settings)
        row = certificates.of_hostname(db, fqdn)
        assert (row["state"], row["error"], row["attempts"]) == ("valid", None, 0)
    root.write_text(pebble.root_pem())  # a restarted pebble has a new root
    answer = curl(internet, f"https://{fqdn}/login", "--cacert", str(root), "-o", "/dev/null",
                  "-w", "%{http_code}")
    assert answer.stdout in ("200", "502", "503"), answer.stderr  # verified TLS to the proxy


def test_warren_itself_is_served_on_its_public_name(stack, internet, tmp_path, settings):
    from live import LiveWarren
    pebble, proxy, root = stack
    name = f"warren.{settings.dns_zone}"
    (tmp_path / "live").mkdir()
    live = LiveWarren(tmp_path / "live")
    live.env.update(WARREN_INGRESS_ADDRESS=internet.host_ip, WARREN_INGRESS_DIR=proxy.env["WARREN_INGRESS_DIR"],
                    WARREN_ACME_DIRECTORY=pebble.directory, WARREN_ACME_CA_FILE=pebble.ca_file,
                    WARREN_PUBLIC_HOSTNAME=name, WARREN_LISTEN_PORT=str(live.port))
    live.start()
    try:
        # The worker's first passes route the name and fetch its certificate.
        wait_until(lambda: curl(internet, f"https://{name}/login", "--cacert", str(root), "-o",
                                "/dev/null", "-w", "%{http_code}").stdout == "200",
                   timeout=60, message="Warren on its public name")
        jar = str(tmp_path / "cookies")
        page = curl(internet, f"https://{name}/login", "--cacert", str(root), "-i", "-c", jar)
        assert "__Host-" in page.stdout and "Secure" in page.stdout  # cookies for HTTPS only
        token = CSRF.search(page.stdout).group(1)
        # Warren sees HTTPS (X-Forwarded-Proto): its CSRF check wants a same-site Referer.
        failed = curl(internet, f"https://{name}/login", "--cacert", str(root), "-b", jar,
                      "-e", f"https://{name}/login",
                      "--data-urlencode", "username=nobody", "--data-urlencode", "password=wrong",
                      "--data-urlencode", f"csrf_token={token}", "-o", "/dev/null",
                      "-w", "%{http_code}")
        assert failed.stdout == "401"
        assert curl(internet, f"http://{name}/login", "-o", "/dev/null",
                    "-w", "%{redirect_url}").stdout == f"https://{name}/login"
    finally:
        live.stop()
    with sqlite3.connect(live.folder / "warren.sqlite3") as db:
        assert db.execute("SELECT state FROM certificates WHERE hostname = ?", [name]).fetchone() \
            == ("valid",)
        # The failure is charged to the client's address, as the proxy passed it on.
        keys = {key for (key,) in db.execute("SELECT key FROM login_failures")}
    assert f"client:{internet.client_ip}" in keys, keys
