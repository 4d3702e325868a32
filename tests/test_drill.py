"""The disaster-recovery drill, on real LXD and a named of its own: two
members with instances, DNS records and data inside; everything backed up
(`flask backup --instances`); Warren's data directory, the member projects
and the zone destroyed; Warren brought back on the same machine with the
documented commands (`flask restore PATH`, then named and Warren started);
every instance runs with its data, names resolve, sign-in works, quotas
count the same, and a second restore changes nothing."""
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from app import dns, lxd
from app.config import Settings
from app.names import project_name
from live import REPO, LiveWarren, free_port
from support import KEY, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.lxd, pytest.mark.named]


class Drill:
    """A Warren whose data directory, named and backup directory are its own."""

    def __init__(self, settings, root: Path):
        self.root, self.data, self.backups = root, root / "data", root / "backups"
        self.warren = LiveWarren(root, workers=1)
        self.warren.env.pop("WARREN_SECRET_KEY")
        for key, value in list(self.warren.env.items()):  # the test run's dns_dir, ssh_dir, ...
            if key.startswith("WARREN_") and value.startswith(settings.data_dir) \
                    and key != "WARREN_IMAGE_CACHE":
                del self.warren.env[key]
        self.warren.env.update(
            WARREN_DATA_DIR=str(self.data), WARREN_DATABASE=str(self.data / "warren.sqlite3"),
            WARREN_WORKER_SOCKET=str(self.data / "worker.sock"), WARREN_LOG_DIR=str(root / "logs"),
            WARREN_DNS_PORT=str(free_port()), WARREN_DNS_CONTROL_PORT=str(free_port()),
            WARREN_BACKUP_DIR=str(self.backups), WARREN_BACKUP_INTERVAL_HOURS="0")
        self.zone = dns.zone_from_settings(Settings(settings, dns_port=int(self.warren.env["WARREN_DNS_PORT"])))

    def fresh_machine(self) -> None:
        """What bin/up leaves on a fresh machine before anything is restored: a data
        directory with a secret key (LXD's pool and bridge are the test run's)."""
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "secret-key").write_text(uuid.uuid4().hex * 2 + "\n")

    def named(self, action: str) -> None:
        result = subprocess.run([str(REPO / "dns" / "named.sh"), action], env=self.warren.env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr

    def start(self) -> None:
        self.named("start")
        self.warren.processes.clear()
        self.warren.start()

    def stop(self) -> None:
        self.warren.stop()
        self.named("stop")


def snapshot(drill, sessions, settings) -> dict:
    """What must come back the same: per member, usage page figures, their
    instance's data, address, name and TXT record."""
    seen = {}
    for username, session in sessions.items():
        usage = session.get(drill.warren.base + "/usage").text.split("Live, as LXD sees it")[0]
        figures = re.findall(r"<td>([a-z ]+)</td><td>([^<]*)</td>", usage)
        scoped = lxd.backend(settings).client(project=project_name(username))
        instance = lxd.get_instance(scoped, session.lxd_name)
        code, out, _ = lxd.execute(instance, ["cat", "/root/data.txt"])
        fqdn = f"web.{username}.{settings.dns_zone}"
        seen[username] = {"usage": figures, "status": instance.status, "data": out.strip(),
                          "A": dns.lookup(drill.zone, fqdn),
                          "TXT": dns.lookup(drill.zone, f"note.{username}.{settings.dns_zone}", "TXT")}
    return seen


def test_the_disaster_recovery_drill(settings, busybox_image):
    root = Path(settings.data_dir) / f"drill-{uuid.uuid4().hex[:8]}"  # named (user bind) reaches it
    drill = Drill(settings, root)
    members = [f"d{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        drill.fresh_machine()
        for username in members:
            drill.warren.add_member(username)
        drill.start()
        sessions = {}
        for username in members:
            session = drill.warren.session(username)
            location = session.submit("/instances/new", session.token("/instances/new"), name="web",
                                      profile="small", image="busybox", keys=KEY).headers["Location"]
            assert session.wait_settled(location)["status"] == "ready"
            session.submit("/dns/records", session.token("/dns"), name="note", rtype="TXT",
                           value=f"hello {username}", ttl="")
            scoped = lxd.backend(settings).client(project=project_name(username))
            session.lxd_name = next(name for name, config in lxd.instance_configs(scoped).items()
                                    if config.get("user.warren.hostname") == "web")
            code, _, err = lxd.execute(lxd.get_instance(scoped, session.lxd_name),
                                       ["sh", "-c", f"echo data of {username} > /root/data.txt"])
            assert code == 0, err
            sessions[username] = session
        wait_until(lambda: all(snapshot(drill, sessions, settings)[name]["TXT"] for name in members),
                   timeout=30, message="the members' records published")
        before = snapshot(drill, sessions, settings)

        out = drill.warren.flask("backup", "--instances")
        copy = Path(re.search(r"Warren's state copied to (\S+)", out).group(1))
        assert oct(copy.stat().st_mode & 0o777) == "0o700"
        assert all(oct(path.stat().st_mode & 0o777) == "0o600"
                   for path in copy.rglob("*") if path.is_file())

        drill.stop()  # the disaster: data directory, zone, member projects gone
        shutil.rmtree(drill.data)
        for username in members:
            lxd.delete_project(lxd.backend(settings), project_name(username))
        assert not drill.data.exists()

        drill.fresh_machine()  # the documented restore: bin/up, bin/down, flask restore, bin/up
        restored = drill.warren.flask("restore", str(copy))
        assert restored.count("restored from the backup of") == 2, restored
        drill.start()
        for username, session in sessions.items():
            session.cookies.clear()
            session.login(username, "live password 1")
        wait_until(lambda: all(snapshot(drill, sessions, settings)[name]["A"] for name in members),
                   timeout=60, message="the names published again")
        after = snapshot(drill, sessions, settings)
        assert after == before
        assert all(state["status"] == "Running" and state["data"] == f"data of {name}"
                   for name, state in after.items())

        drill.stop()  # a second restore changes nothing
        again = drill.warren.flask("restore", str(copy))
        assert again.count("present in LXD, left as it is") == 2, again
        drill.start()
        for username, session in sessions.items():
            session.cookies.clear()
            session.login(username, "live password 1")
        wait_until(lambda: snapshot(drill, sessions, settings) == before, timeout=60,
                   message="the same state after a second restore")
    finally:
        try:
            drill.stop()
        except Exception:
            pass
        for username in members:
            lxd.delete_project(lxd.backend(settings), project_name(username))
        shutil.rmtree(root, ignore_errors=True)
