"""Shared fixtures. The app runs on a temporary SQLite file; LXD and named
are the real daemons that bin/test starts (their settings come from the same
WARREN_* environment bin/test exports). LXD objects get unique names and are
removed after each test."""
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from shards import isolate_worker

isolate_worker()  # before any fixture reads the settings: a no-op outside xdist

from app import create_app, dns, lxd  # noqa: E402
from app.config import load_settings

from support import PASSWORD, csrf_token

REPO = Path(__file__).resolve().parent.parent
MARKERS = {
    "lxd": "uses the real LXD daemon",
    "named": "uses the real named",
    "slow": "takes more than a few seconds (left out of the quick loop: -m 'not slow')",
    "browser": "drives a real headless Chromium against a live Warren",
    "vm": "boots virtual machines on the VM test daemon",
    "serial": "needs a quiet machine (VM boots, worker kills): the whole suite runs these after "
              "the others, two files at a time",
    "outage": "stops a daemon every test shares: the whole suite runs these alone, at the end",
    "cluster": "builds the three-member LXD cluster of tests/cluster in network namespaces (one "
               "per host: only tests/test_cluster.py uses it)",
}
# Fixtures that reach a real backend: tests using them get the marker.
BACKEND_FIXTURES = {"lxd": {"lxd_client", "instances", "worker", "members", "debian_image"},
                    "named": {"zone", "dig", "worker", "members", "public_dns"}}


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in BACKEND_FIXTURES.items():
            if used & fixtures:
                item.add_marker(marker)


@pytest.fixture
def fixed_clock():
    """The clock leases are judged by, fixed at now; move it with support.advance."""
    from app import clock
    clock.set_now(clock.now())
    yield clock
    clock.set_now(None)


@pytest.fixture
def internet():
    """A simulated Internet (tests/netsim.py), stopped after the test."""
    from netsim import Internet
    simulated = Internet().start()
    yield simulated
    simulated.stop()


@pytest.fixture
def scratch_bridge(internet, tmp_path, lxd_client, settings, monkeypatch):
    """A scratch Warren bridge (tests/bridges.py) guarded to the test's
    Internet; removed afterwards."""
    from bridges import ScratchBridge
    # The host's default profile belongs to the host's Warren, not to this one.
    monkeypatch.setattr(lxd, "ensure_default_profile", lambda *args: False)
    bridge = ScratchBridge(tmp_path, lxd_client, settings, internet)
    yield bridge
    bridge.remove()


@pytest.fixture(scope="session")
def settings():
    return load_settings()


def make_app(tmp_path, own_profiles: bool = False, **overrides):
    """An app on a temporary database; with own_profiles, on a copy of
    profiles/ that the test may edit."""
    if own_profiles:
        shutil.copytree(REPO / "profiles", tmp_path / "profiles")
        overrides["profiles_dir"] = str(tmp_path / "profiles")
    app = create_app({"database": str(tmp_path / "warren.sqlite3"), "secret_key": "t" * 48,
                      "worker_socket": str(tmp_path / "worker.sock"), **overrides})
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def post_form(client, page, data, url=None, expect=None):
    """Submit a form found on `page` (to `url`, if it posts elsewhere) the
    way a browser does."""
    token = csrf_token(client.get(page).get_data(as_text=True))
    response = client.post(url or page, data={**data, "csrf_token": token})
    if expect is not None:
        assert response.status_code == expect, response.get_data(as_text=True)[:3000]
    return response


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    """Create an account directly through the accounts service."""
    from app import accounts

    def make(username="alice", role="member", password=PASSWORD):
        with app.app_context():
            return accounts.create_user(username, password, role)
    return make


class Auth:
    """Signs a test client in and out through the real forms."""

    def __init__(self, client):
        self.client = client

    def login(self, username="alice", password=PASSWORD, follow_redirects=False):
        token = csrf_token(self.client.get("/login").get_data(as_text=True))
        return self.client.post("/login", data={"username": username, "password": password,
                                                "csrf_token": token},
                                follow_redirects=follow_redirects)

    def logout(self):
        token = csrf_token(self.client.get("/").get_data(as_text=True))
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def admin(app, make_user):
    """A signed-in admin web client."""
    make_user("boss", role="admin")
    client = app.test_client()
    Auth(client).login("boss")
    return client


@pytest.fixture
def unique_name():
    """A fresh name for an LXD object or DNS label."""
    return lambda prefix="t": f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def lxd_client(settings):
    return lxd.backend(settings).client()


@pytest.fixture
def instances(lxd_client):
    """Names registered here are force-deleted after the test."""
    created = []
    yield created
    for name in created:
        lxd.delete_instance(lxd_client, name)


@pytest.fixture(scope="session")
def zone(settings):
    return dns.zone_from_settings(settings)


@pytest.fixture(scope="session")
def dig(settings):
    """Ask the real named with dig, as an operator would."""
    def run(name, rdtype="A"):
        result = subprocess.run(
            ["dig", "+short", "+time=2", "+tries=1", "-p", str(settings.dns_port),
             f"@{settings.dns_server}", name, rdtype],
            capture_output=True, text=True, check=True)
        return sorted(result.stdout.splitlines())
    return run


@pytest.fixture(scope="session")
def debian_image(lxd_client, settings):
    """The Debian member image, built and imported on first need and cached."""
    subprocess.run([str(REPO / "images" / "ensure.sh"), settings.image_cache, "debian-12"],
                   check=True)
    return "debian-12"


@pytest.fixture(scope="session")
def busybox_image(settings):
    """The busybox image as this checkout's recipe builds it. bin/test
    imports it already; the console tests make sure again (a no-op when it
    is current) because they need the shell its inittab puts on the console."""
    subprocess.run([str(REPO / "images" / "ensure.sh"), settings.image_cache, "busybox"],
                   check=True)
    return "busybox"


@pytest.fixture
def worker(app):
    """The provisioning worker, running in this process on the test's database."""
    from app.worker import Worker
    running = Worker(app).start()
    app.extensions["test.worker"] = running
    yield running
    running.stop()


@pytest.fixture
def members(app, settings, unique_name):
    """Logged-in web clients for fresh members; their LXD projects and DNS
    names are removed afterwards."""
    from app import accounts, names, projects
    made = []

    def make(tier="full", username=None):
        username = username or unique_name("m")
        with app.app_context():
            user = accounts.create_user(username, PASSWORD)
            from app.store import get_db
            get_db()["users"].update(user["id"], {"tier": tier})
        client = app.test_client()
        Auth(client).login(username)
        client.username = username
        made.append(username)
        return client
    yield make
    if "test.worker" in app.extensions:  # no reconcile may rebuild what is cleaned up here
        app.extensions["test.worker"].stop()
    with app.app_context():
        from app.store import get_db
        fqdns = [(row["fqdn"], row["project"]) for row in get_db()["instances"].rows]
    zone = dns.zone_from_settings(settings)
    with app.app_context():
        owners = {fqdn: projects.dns_owner(names.member_of(project))
                  for fqdn, project in fqdns}
    for fqdn, owner in owners.items():
        try:
            dns.remove_name(zone, fqdn, owner)
        except Exception:
            pass
    for username in made:
        # The app's own LXD: the VM tests point it at the VM test daemon.
        lxd.delete_project(lxd.backend(app.config["WARREN"]), names.project_name(username))
        projects.forget_applied(names.project_name(username))
