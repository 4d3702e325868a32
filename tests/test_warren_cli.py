"""The `warren` command-line client (cli/) end to end, as a user runs it,
against Warren as bin/up runs it (gunicorn, the worker, real LXD and
named): login, create --wait, ls --json, ssh's route, stop, snapshots
(take, ls, a restore that asks first, rm), DNS records, a custom domain and
its proof, forwards and websites refused while they are off, a refused
request's exit code and field errors, usage, rm --wait, and admin member
work. One busybox instance for the module. Also: every operation the
client uses exists in the pinned OpenAPI document."""
import json
import os
import shutil
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from app import lxd
from app.names import project_name
from live import REPO, LiveWarren, free_port
from support import KEY, open_jobs, remove_names, wait_until

WARREN = REPO / ".venv" / "bin" / "warren"
PINNED = REPO / "app" / "views" / "api" / "openapi-v1.json"


def test_every_operation_the_client_uses_is_in_the_pinned_document():
    from importlib import util
    spec = util.spec_from_file_location("client", REPO / "cli" / "warren_cli" / "client.py")
    client = util.module_from_spec(spec)
    spec.loader.exec_module(client)
    paths = json.loads(PINNED.read_text())["paths"]
    for name, (method, template) in client.OPERATIONS.items():
        assert method.lower() in paths.get(client.VERSION + template, {}), name


@pytest.fixture(scope="module")
def live(tmp_path_factory, settings, zone):
    folder = tmp_path_factory.mktemp("warren-cli")
    shutil.copytree(REPO / "profiles", folder / "profiles")
    warren = LiveWarren(folder, workers=2)
    # Nothing answers on that port: a domain's proof is never found, and no lookup leaves the machine.
    warren.env.update(WARREN_PROFILES_DIR=str(folder / "profiles"),
                      WARREN_PUBLIC_RESOLVERS=f"127.0.0.1:{free_port()}", WARREN_DOMAIN_LOOKUP_SECONDS="1")
    warren.member = f"c{uuid.uuid4().hex[:8]}"
    warren.start()
    warren.add_member(warren.member)
    warren.add_member("clibo", role="admin")
    yield warren
    wait_until(lambda: not open_jobs(folder / "warren.sqlite3"), timeout=120, message="jobs done")
    warren.stop()
    remove_names(folder / "warren.sqlite3", zone)
    lxd.delete_project(lxd.backend(settings), project_name(warren.member))


def run(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(WARREN), *args], input=stdin, capture_output=True, text=True,
                          timeout=300, env={"PATH": os.environ["PATH"], "XDG_CONFIG_HOME": str(home),
                                            "HOME": str(home)})


@pytest.fixture(scope="module")
def member_home(live, tmp_path_factory):
    home = tmp_path_factory.mktemp("member-home")
    result = run(home, "login", live.base, "--token-stdin", stdin=live.token(live.member) + "\n")
    assert result.returncode == 0 and live.member in result.stdout, result.stderr
    return home


@pytest.mark.slow
@pytest.mark.lxd
@pytest.mark.named
def test_create_wait_then_ls_shows_it_ready_and_the_rest_of_an_instances_life(
        live, member_home, busybox_image, tmp_path):
    config = member_home / "warren" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    key = tmp_path / "id_ed25519.pub"
    key.write_text(KEY + "\n")
    name = f"cli{uuid.uuid4().hex[:6]}"
    created = run(member_home, "create", name, "--profile", "small", "--image", "busybox",
                  "--key", str(key), "--wait")
    assert created.returncode == 0, created.stdout + created.stderr
    listed = json.loads(run(member_home, "ls", "--json").stdout)
    assert [(row["name"], row["status"], row["state"]) for row in listed] == \
        [(name, "ready", "Running")]
    table = run(member_home, "ls").stdout
    assert table.startswith("NAME") and name in table
    route = run(member_home, "ssh", name, "--print").stdout
    assert f"root@{listed[0]['ipv4']}" in route and "-J warren-jump@" in route
    again = run(member_home, "create", name, "--profile", "small", "--image", "busybox",
                "--key", str(key))
    assert again.returncode == 5 and f"name: You already have an instance named {name}" in again.stderr
    assert run(member_home, "stop", name).returncode == 0
    started = time.monotonic()
    snapshots_records_and_domains(member_home, name)
    print(f"snapshot, record, domain, forward and site commands: {time.monotonic() - started:.1f} s")
    usage = json.loads(run(member_home, "usage", "--json").stdout)
    assert usage["used"]["instances"] == 1
    assert run(member_home, "status", "nope").returncode == 4
    assert run(member_home, "renew", name).returncode == 6  # small has no lease
    removed = run(member_home, "rm", name, "--wait")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(run(member_home, "ls", "--json").stdout) == []


@pytest.mark.slow
def test_admin_member_commands_and_exit_codes(live, member_home, tmp_path):
    assert run(tmp_path, "ls").returncode == 3  # not logged in
    assert run(member_home, "admin", "member", "ls").returncode == 4  # not an admin
    admin_home = tmp_path / "admin"
    assert run(admin_home, "login", live.base, "--token-stdin",
               stdin=live.token("clibo", "admin") + "\n").returncode == 0
    made = run(admin_home, "admin", "member", "create", "clinew", "--tier", "half",
               "--password-stdin", "--json", stdin="a long password 1\n")
    assert made.returncode == 0 and json.loads(made.stdout)["tier"] == "half", made.stderr
    bad = run(admin_home, "admin", "member", "create", "X", "--tier", "nope", "--password-stdin",
              stdin="short\n")
    assert bad.returncode == 5 and "username:" in bad.stderr and "password:" in bad.stderr
    shared = run(admin_home, "admin", "member", "share", "clinew", "--tier", "full", "memory=2GiB",
                 "--json")
    assert shared.returncode == 0 and json.loads(shared.stdout)["overrides"] == {"memory": 2 * 1024 ** 3}
    names = [row["username"] for row in json.loads(run(admin_home, "admin", "member", "ls",
                                                        "--json").stdout)]
    assert "clinew" in names and live.member in names
    assert run(admin_home, "admin", "member", "disable", "clinew").returncode == 0
    assert run(admin_home, "admin", "member", "rm", "clinew", "--yes").returncode == 0
    made = json.loads(run(admin_home, "token", "create", "ci", "--scope", "read", "--json").stdout)
    assert made["token"].startswith("wrn_")
    assert run(admin_home, "token", "revoke", str(made["id"])).returncode == 0


def snapshots_records_and_domains(home: Path, name: str) -> None:
    """The commands around an instance, on the (stopped) instance name."""
    took = run(home, "snapshot", "take", name, "first", "--wait")
    assert took.returncode == 0 and "Snapshot first taken." in took.stdout, took.stderr
    assert [row["name"] for row in json.loads(run(home, "snapshot", "ls", name, "--json").stdout)] \
        == ["first"]
    asked = run(home, "snapshot", "restore", name, "first", stdin="n\n")
    assert asked.returncode == 1 and "Everything written to" in asked.stdout  # it said, we declined
    restored = run(home, "snapshot", "restore", name, "first", "--yes", "--wait")
    assert restored.returncode == 0 and "Restored to snapshot first." in restored.stdout, restored.stderr
    assert run(home, "snapshot", "rm", name, "first", "--wait").returncode == 0
    assert run(home, "snapshot", "rm", name, "first").returncode == 4

    made = run(home, "record", "add", "blog", "cname", "web.example.org", "--json")
    assert made.returncode == 0, made.stderr
    assert "blog." in run(home, "record", "ls").stdout
    bad = run(home, "record", "add", "no spaces", "A", "x", "--ttl", "5")
    assert bad.returncode == 5 and all(f"{field}:" in bad.stderr for field in ("name", "rtype", "ttl"))
    assert run(home, "record", "rm", str(json.loads(made.stdout)["id"])).returncode == 0

    added = run(home, "domain", "add", "www.example.org", name)
    assert added.returncode == 0 and "_warren-challenge.www.example.org. 300 IN TXT" in added.stdout
    assert "pending" in run(home, "domain", "ls").stdout
    assert run(home, "domain", "show", "www.example.org", "--json").returncode == 0
    assert run(home, "domain", "rm", "www.example.org").returncode == 0
    assert run(home, "domain", "show", "www.example.org").returncode == 4

    off = run(home, "forward", "add", name, "6667")
    assert off.returncode == 6 and "Port forwards are off" in off.stderr
    assert run(home, "site", "publish", name).returncode == 6  # no public address here either
