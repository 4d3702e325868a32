"""Web hardening: bounded sessions, logout that sticks, security headers,
the __Host- cookie, invitation tokens kept out of the access log, and
sign-in throttling that follows the real client behind a reverse proxy."""
import os
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import flask
import pytest
import requests

from app import accounts, passwords, throttle
from app.errors import TooManyAttempts
from app.store import get_db, now
from conftest import Auth, make_app
from live import PASSWORD as LIVE_PASSWORD, LiveWarren, browser_from, free_port
from support import PASSWORD, csrf_token, wait_until

REPO = Path(__file__).resolve().parent.parent
NGINX = "/usr/sbin/nginx"
ANONYMOUS_VISITS = 3000
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
CSP_PARTS = ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'",
             "base-uri 'self'", "form-action 'self'")


def session_count(app, user_id=None) -> int:
    with app.app_context():
        if user_id is None:
            return get_db()["sessions"].count
        return get_db()["sessions"].count_where("user_id = ?", [user_id])


def cookie_of(client, app):
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return cookie.value if cookie else None


# 1. Anonymous traffic leaves no trace server-side.

def test_anonymous_visits_write_no_session_rows(app, make_user):
    make_user("alice")
    before = session_count(app)
    visitor = app.test_client(use_cookies=False)
    for _ in range(ANONYMOUS_VISITS):
        response = visitor.get("/login")
        assert response.status_code == 200
        assert response.headers.get("Set-Cookie", "").startswith("warren_session=")
    assert session_count(app) == before


def test_sign_in_still_works_after_an_anonymous_visit_and_writes_one_row(app, client, auth,
                                                                         make_user):
    user = make_user("alice")
    assert auth.login().status_code == 302
    assert client.get("/").status_code == 200
    assert session_count(app, user["id"]) == 1


def test_login_csrf_token_is_bound_to_the_visitor(app, client, make_user):
    make_user("alice")
    token = csrf_token(client.get("/login").get_data(as_text=True))
    stranger = app.test_client()  # the token without the visitor's cookie
    response = stranger.post("/login", data={"username": "alice", "password": PASSWORD,
                                             "csrf_token": token})
    assert response.status_code == 400
    response = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                           "csrf_token": token + "x"})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_tampered_anonymous_cookie_is_ignored(app, client, make_user):
    make_user("alice")
    token = csrf_token(client.get("/login").get_data(as_text=True))
    value = cookie_of(client, app)
    forged = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], forged)
    response = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 400


def test_anonymous_cookie_cannot_carry_a_user_id(app, client, make_user):
    user = make_user("alice")
    interface = app.session_interface
    forged = interface.anonymous_serializer(app).dumps({"user_id": user["id"]})
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], forged)
    assert client.get("/").status_code == 302


def test_server_sessions_per_user_are_capped(app, make_user):
    from app import sessions
    user = make_user("alice")
    clients = []
    for _ in range(sessions.MAX_PER_USER + 2):
        client = app.test_client()
        assert Auth(client).login().status_code == 302
        clients.append(client)
    assert session_count(app, user["id"]) == sessions.MAX_PER_USER
    assert clients[-1].get("/").status_code == 200  # the newest stay signed in
    assert clients[0].get("/").status_code == 302  # the oldest went first


def test_logout_message_is_shown(client, auth, make_user):
    make_user("alice")
    auth.login()
    response = auth.logout()
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You are signed out." in page


# 2. A request in flight during logout cannot bring the session back.

def _open_in_flight(app, cookie):
    header = {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={cookie}"}
    with app.test_request_context("/", headers=header):
        return app.session_interface.open_session(app, flask.request)


def _save_in_flight(app, cookie, in_flight):
    header = {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={cookie}"}
    with app.test_request_context("/", headers=header):
        response = app.response_class()
        app.session_interface.save_session(app, in_flight, response)
        return response


def test_request_in_flight_during_logout_cannot_restore_the_session(app, client, auth,
                                                                    make_user):
    user = make_user("alice")
    auth.login()
    cookie = cookie_of(client, app)
    in_flight = _open_in_flight(app, cookie)  # loaded before the logout...
    assert in_flight["user_id"] == user["id"]
    other = app.test_client()
    other.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    assert Auth(other).logout().status_code == 302
    assert session_count(app, user["id"]) == 0
    in_flight["seen"] = "late write"  # ...and changed after it
    response = _save_in_flight(app, cookie, in_flight)
    assert session_count(app, user["id"]) == 0
    assert "Max-Age=0" in response.headers.get("Set-Cookie", "")  # the browser forgets it
    replay = app.test_client()
    replay.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    assert replay.get("/").status_code == 302


def test_rotation_in_flight_during_logout_mints_no_new_session(app, client, auth, make_user):
    user = make_user("alice")
    auth.login()
    cookie = cookie_of(client, app)
    in_flight = _open_in_flight(app, cookie)
    auth.logout()
    in_flight.rotate()  # e.g. a password change that was already past its checks
    response = _save_in_flight(app, cookie, in_flight)
    assert session_count(app, user["id"]) == 0
    assert not any(value.split("=", 1)[1].split(";")[0]
                   for value in response.headers.getlist("Set-Cookie"))


# 3. Headers, cookie prefix, templates without inline code.

def _responses(app, make_user):
    make_user("alice")
    anonymous = app.test_client()
    yield "login page", anonymous.get("/login")
    yield "redirect to login", anonymous.get("/")
    yield "not found", anonymous.get("/no-such-page")
    yield "json not found", anonymous.get("/no-such-page", headers={"Accept": "application/json"})
    yield "missing CSRF token", anonymous.post("/login", data={})
    yield "static file", anonymous.get("/static/warren.css")
    member = app.test_client()
    yield "sign-in redirect", Auth(member).login()
    yield "dashboard", member.get("/")


def test_every_response_carries_the_security_headers(app, make_user):
    for label, response in _responses(app, make_user):
        for name, value in HEADERS.items():
            assert response.headers.get(name) == value, (label, name)
        policy = response.headers.get("Content-Security-Policy", "")
        for part in CSP_PARTS:
            assert part in policy, (label, part)
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, label


def test_an_unexpected_error_page_carries_the_headers_too(app):
    @app.route("/boom")
    def boom():
        raise RuntimeError("kaboom")
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert "frame-ancestors 'none'" in response.headers.get("Content-Security-Policy", "")


INLINE = (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
          re.compile(r"<style\b", re.I),
          re.compile(r"\son[a-z]+\s*=", re.I),
          re.compile(r"\sstyle\s*=", re.I),
          re.compile(r"javascript:", re.I))


def test_templates_hold_no_inline_script_style_or_handlers():
    templates = sorted((REPO / "app" / "templates").rglob("*.html"))
    assert templates
    for template in templates:
        text = template.read_text()
        for pattern in INLINE:
            assert not pattern.search(text), (template.name, pattern.pattern)


def test_instance_page_follows_progress_with_a_static_script(app, client, auth, make_user):
    user = make_user("alice")
    with app.app_context():
        instance_id = get_db()["instances"].insert({
            "user_id": user["id"], "name": "web", "lxd_name": "web-hardening-test",
            "project": "warren-alice", "profile": "small",
            "image": "busybox", "instance_type": "container", "fqdn": "web.alice.vm.example.test",
            "ipv4": None, "ssh_keys": "", "cpu": 1, "memory": 1, "disk": 1, "processes": 1,
            "status": "pending", "error": None, "lease_expires_at": None,
            "created_at": now(), "updated_at": now()}).last_pk
    auth.login()
    page = client.get(f"/instances/{instance_id}").get_data(as_text=True)
    script = re.search(r'<script src="(/static/[^"]+\.js)"', page)
    assert script, "the page loads no script"
    assert f'data-progress="/instances/{instance_id}/progress"' in page
    assert client.get(script.group(1)).status_code == 200
    assert client.get(f"/instances/{instance_id}/progress").get_json()["status"] == "pending"


def test_secure_cookie_gets_the_host_prefix(tmp_path):
    app = make_app(tmp_path, cookie_secure=True)
    with app.app_context():
        accounts.create_user("alice", PASSWORD)
    client = app.test_client()
    https = {"base_url": "https://localhost"}
    page = client.get("/login", **https)
    header = page.headers["Set-Cookie"]
    assert header.startswith("__Host-warren_session=")
    assert "Secure" in header and "Path=/" in header and "Domain" not in header
    response = client.post("/login", data={
        "username": "alice", "password": PASSWORD,
        "csrf_token": csrf_token(page.get_data(as_text=True))},
        headers={"Referer": "https://localhost/login"}, **https)
    assert response.status_code == 302
    assert response.headers["Set-Cookie"].startswith("__Host-warren_session=")
    assert client.get("/", **https).status_code == 200


def test_plain_http_cookie_keeps_its_plain_name(client):
    header = client.get("/login").headers["Set-Cookie"]
    assert header.startswith("warren_session=") and "Secure" not in header


@pytest.mark.slow
def test_invitation_tokens_stay_out_of_the_access_log(tmp_path):
    warren = LiveWarren(tmp_path, worker=False, access_log=True)
    warren.add_member("chief", role="admin")
    warren.start()
    try:
        http = warren.session("chief")
        page = http.submit("/admin/users", **{"invite-role": "member", "invite-tier": "full",
                                              "invite-hours": "24"})
        link = re.search(r'<code id="invite-link">([^<]+)</code>', page.text).group(1)
        token = link.rsplit("/", 1)[1]
        visitor = requests.Session()
        assert visitor.get(link).status_code == 200
        assert visitor.get(warren.base + "/static/warren.css", headers={"Referer": link}).ok
        encoded = warren.base + "/%69nvite/" + token  # the same route, spelt differently
        assert visitor.get(encoded + "?from=mail").status_code == 200
        log = warren.access_log
        wait_until(lambda: log.exists() and log.read_text().count("[redacted]") >= 3,
                   message="three access log lines with a redacted token")
    finally:
        warren.stop()
    lines = log.read_text().splitlines()
    assert not [line for line in lines if token in line]
    assert [line for line in lines if '"GET /invite/[redacted] HTTP/1.1" 200' in line]
    assert [line for line in lines if "warren.css" in line and "/invite/[redacted]" in line]
    assert [line for line in lines if "nvite/[redacted]?from=mail" in line]


# 4. Throttling per client and per (account, client), behind a proxy.

def _fail(app, username, address, times=1):
    """Count failed sign-ins as the login view would."""
    with app.app_context():
        for _ in range(times):
            throttle.begin(get_db(), username, address)


def _age_failures(app, by: timedelta):
    with app.app_context():
        db = get_db()
        for rowid, at in db.execute("SELECT rowid, at FROM login_failures").fetchall():
            older = (datetime.fromisoformat(at) - by).isoformat(timespec="seconds")
            db.execute("UPDATE login_failures SET at = ? WHERE rowid = ?", [older, rowid])


def _refusal(app, username, address) -> str | None:
    with app.app_context():
        try:
            attempt = throttle.begin(get_db(), username, address)
        except TooManyAttempts as error:
            return str(error)
        throttle.succeeded(get_db(), attempt)
        return None


def test_each_failure_past_the_limit_doubles_the_wait(app):
    limit = throttle.LIMITS["account"]
    _fail(app, "alice", "192.0.2.7", limit - 1)
    assert _refusal(app, "alice", "192.0.2.7") is None  # under the limit (and now forgotten)
    _fail(app, "alice", "192.0.2.7", limit)
    waits = [15, 30, 60, 120, 240, 480, 960, 24 * 60]
    for number, minutes in enumerate(waits):
        message = _refusal(app, "alice", "192.0.2.7")
        assert message == f"Too many failed sign-ins; try again in {minutes} minutes.", message
        if number + 1 < len(waits):
            _age_failures(app, timedelta(minutes=minutes, seconds=1))  # the wait is over...
            assert _refusal(app, "bob", "192.0.2.7") is None  # (other names were open all along)
            _fail(app, "alice", "192.0.2.7")  # ...and one more failure doubles it


def test_one_address_trying_many_names_is_blocked(app, client, auth, make_user):
    make_user("alice")
    for number in range(throttle.LIMITS["client"]):
        _fail(app, f"name{number}", "127.0.0.1")
    response = auth.login("alice")
    assert response.status_code == 429
    assert "Too many failed sign-ins from your address; try again in 15 minutes." \
        in response.get_data(as_text=True)


def test_blocked_attempts_are_refused_before_any_password_hashing(app, auth, make_user,
                                                                  monkeypatch):
    make_user("alice")
    for _ in range(throttle.LIMITS["account"]):
        assert auth.login("alice", "wrong password!").status_code == 401
    hashed = []
    original = passwords.verify_password
    monkeypatch.setattr(passwords, "verify_password",
                        lambda *args: hashed.append(1) or original(*args))
    for _ in range(3):
        assert auth.login("alice").status_code == 429
    assert hashed == []


def test_success_forgets_the_failures_of_that_account_and_client(app, auth, make_user):
    make_user("alice")
    for _ in range(2):
        for _ in range(throttle.LIMITS["account"] - 1):
            assert auth.login("alice", "wrong password!").status_code == 401
        assert auth.login("alice").status_code == 302
        auth.logout()


def test_login_failures_stay_bounded(app):
    for number in range(500):  # a client spraying names: it is soon refused, uncounted
        try:
            _fail(app, f"name{number}", "192.0.2.7")
        except TooManyAttempts:
            pass
    with app.app_context():
        assert get_db()["login_failures"].count == 2 * throttle.LIMITS["client"]
    _age_failures(app, throttle.MEMORY + timedelta(minutes=1))
    _fail(app, "bob", "192.0.2.8")
    with app.app_context():  # old failures are pruned
        keys = {row[0] for row in get_db().execute("SELECT key FROM login_failures")}
    assert len(keys) == 2 and all("192.0.2.8" in key for key in keys)


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(tmp_path):
    app = make_app(tmp_path, trusted_proxies="10.0.0.1")
    with app.app_context():
        accounts.create_user("alice", PASSWORD)

    def login(peer, forwarded, password):
        client = app.test_client()
        environ = {"REMOTE_ADDR": peer}
        headers = {"X-Forwarded-For": forwarded}
        token = csrf_token(client.get("/login", environ_base=environ, headers=headers)
                           .get_data(as_text=True))
        return client.post("/login", environ_base=environ, headers=headers, data={
            "username": "alice", "password": password, "csrf_token": token}).status_code

    for _ in range(throttle.LIMITS["account"]):  # an attacker behind the proxy
        assert login("10.0.0.1", "203.0.113.9", "wrong password!") == 401
    assert login("10.0.0.1", "203.0.113.9", PASSWORD) == 429
    assert login("10.0.0.1", "203.0.113.9, 198.51.100.4", PASSWORD) == 302  # alice, elsewhere
    for _ in range(throttle.LIMITS["account"]):  # a client that is no proxy, claiming others
        assert login("192.0.2.66", f"198.51.100.{_}", "wrong password!") == 401
    assert login("192.0.2.66", "198.51.100.200", PASSWORD) == 429
    assert login("192.0.2.67", "192.0.2.66", PASSWORD) == 302


NGINX_CONF = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@pytest.fixture
def live(tmp_path):
    """Warren under gunicorn, believing X-Forwarded-For from 127.0.0.1 only."""
    warren = LiveWarren(tmp_path, worker=False)
    warren.env["WARREN_TRUSTED_PROXIES"] = "127.0.0.1"
    for name in ("alice", "bob"):
        warren.add_member(name)
    yield warren.start()
    warren.stop()


@pytest.fixture
def proxy(tmp_path, live):
    """Debian's nginx in front of `live`, as a reverse proxy on 127.0.0.1; its base URL."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(NGINX_CONF.format(user=user, prefix=prefix, port=port,
                                                         upstream=live.port))
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                "-e", str(prefix / "error.log"), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def answers():
        if process.poll() is not None:
            pytest.fail("nginx exited: " + (prefix / "error.log").read_text()[-2000:])
        try:
            return requests.get(base + "/login", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False
    wait_until(answers, 20, "nginx answering")
    yield base
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_attacker_behind_the_proxy_cannot_lock_alice_out(proxy):
    attacker = browser_from(proxy, "127.0.0.2")
    alice = browser_from(proxy, "127.0.0.3")
    codes = [attacker.login("alice", f"guess {n}").status_code for n in range(30)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    spoofed = attacker.post(proxy + "/login", allow_redirects=False,
                            headers={"X-Forwarded-For": "127.0.0.9"},
                            data={"username": "alice", "password": LIVE_PASSWORD,
                                  "csrf_token": attacker.token("/login")})
    assert spoofed.status_code == 429  # nginx appends the real address; Warren takes that
    for number in range(throttle.LIMITS["client"]):  # spraying other names
        attacker.login(f"user{number}", "guess")
    refused = attacker.login("bob", LIVE_PASSWORD)
    assert refused.status_code == 429
    assert "Too many failed sign-ins from your address" in refused.text

    response = alice.login("alice", LIVE_PASSWORD)
    assert response.status_code == 302
    assert alice.get(proxy + "/", allow_redirects=False).status_code == 200
    assert attacker.login("alice", LIVE_PASSWORD).status_code == 429
    assert browser_from(proxy, "127.0.0.4").login("bob", LIVE_PASSWORD).status_code == 302


@pytest.mark.slow
def test_direct_client_cannot_choose_its_address(live):
    attacker = browser_from(live.base, "127.0.0.2")
    attacker.headers["X-Forwarded-For"] = "127.0.0.3"  # alice's address, it claims
    for number in range(throttle.LIMITS["account"]):
        assert attacker.login("alice", f"guess {number}").status_code == 401
    attacker.headers["X-Forwarded-For"] = "127.0.0.99"
    assert attacker.login("alice", LIVE_PASSWORD).status_code == 429
    assert browser_from(live.base, "127.0.0.3").login("alice", LIVE_PASSWORD).status_code == 302
