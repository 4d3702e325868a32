"""Backups and restores: retention by dates, atomic checksummed files, the
background job's place in the queue, and on real LXD (btrfs) through the
web client: a worker killed mid-backup leaves nothing listed, a restore
brings back a deleted file, a damaged backup is refused with the instance
untouched, a full backup disk fails clearly and keeps the older backups,
retention deletes the right file, another member gets 404, and an admin
brings back a deleted instance."""
import json
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import zstandard

from app import backup_files, jobs, lxd
from app.backup_schedule import Made, to_keep, to_keep_deleted
from app.names import project_name
from app.store import get_db, transaction
from live import LiveWarren
from support import KEY, instance_row, remove_names, wait_until

UTC = timezone.utc


def at(day: int, hour: int = 3) -> datetime:
    return datetime(2026, 3, 1, hour, tzinfo=UTC) + timedelta(days=day)


def test_retention_keeps_the_newest_of_each_day_and_week():
    made = [Made(f"d{day}h{hour}", at(day, hour)) for day in range(40) for hour in (3, 15)]
    keep = to_keep(made, daily=7, weekly=4)
    newest_days = {f"d{day}h15" for day in range(33, 40)}
    last_of_week = {}
    for day in range(40):  # oldest first: the last one seen in a week is its newest
        last_of_week[at(day).isocalendar()[:2]] = f"d{day}h15"
    newest_weeks = {last_of_week[week] for week in sorted(last_of_week)[-4:]}
    assert keep == newest_days | newest_weeks
    assert len(newest_weeks - newest_days) >= 2  # older weeks reach past the daily ones


def test_retention_never_deletes_the_last_good_backup():
    only = [Made(1, at(0))]
    assert to_keep(only, daily=1, weekly=0) == {1}
    assert to_keep([Made(1, at(0)), Made(2, at(0, 4))], daily=1, weekly=0) == {2}


def test_a_deleted_instances_backups_go_after_the_retention_window():
    made = [Made(1, at(0)), Made(2, at(1))]
    assert to_keep_deleted(made, 7, 4, at(20)) == {1, 2}
    assert to_keep_deleted(made, 7, 4, at(30)) == set()


def test_an_interrupted_write_leaves_nothing_that_looks_complete(tmp_path):
    def fill(write):
        write(b"x" * 1000)
        raise RuntimeError("the export broke off")
    with pytest.raises(RuntimeError):
        backup_files.write_backup(str(tmp_path), "i/1.tar.gz", fill)
    assert list((tmp_path / "i").iterdir()) == []
    size, digest = backup_files.write_backup(str(tmp_path), "i/2.tar.gz", lambda write: write(b"ok"))
    assert size == 2 and backup_files.complete_files(str(tmp_path), "i") == ["2.tar.gz"]
    assert (tmp_path / "i/2.tar.gz.sha256").read_text() == f"{digest}  2.tar.gz\n"
    (tmp_path / "i/3.tar.gz").write_bytes(b"no checksum")  # a crash between the two renames
    assert backup_files.clean_partial(str(tmp_path), "i") == ["3.tar.gz"]


def test_writes_end_however_the_write_and_flush_threads_interleave():
    # The flush thread once missed the writer's last wake-up and waited for
    # ever. On tmpfs (instant syncs) that came within the first few files;
    # a hang fails by the timeout.
    folder = tempfile.mkdtemp(dir="/dev/shm")

    def many():
        for number in range(2000):
            backup_files.write_backup(folder, f"i/{number % 3}.tar", lambda write: write(b"x"))
    try:
        thread = threading.Thread(target=many, daemon=True)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "a backup write never finished"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_changed_byte_is_refused_by_the_checksum(tmp_path):
    backup_files.write_backup(str(tmp_path), "b.tar", lambda write: write(b"abcdef"))
    backup_files.verify(str(tmp_path), "b.tar")
    (tmp_path / "b.tar").write_bytes(b"abcdeF")
    with pytest.raises(backup_files.CorruptBackup, match="damaged or truncated"):
        backup_files.verify(str(tmp_path), "b.tar")


def test_a_backup_job_waits_for_members_jobs_and_runs_one_at_a_time(app, make_user):
    user = make_user("alice")
    with app.app_context():
        db = get_db()
        with transaction(db):
            first, second, third = (instance_row(db, user["id"], name, "ready", None)
                                    for name in ("a", "b", "c"))
            for instance_id in (first, second):
                backup = db["backups"].insert({"instance_id": instance_id, "user_id": user["id"],
                                               "reason": "schedule", "created_at": "x"}).last_pk
                jobs.enqueue(db, instance_id, "backup", backup_id=backup)
            jobs.enqueue(db, third, "restart")
        assert jobs.claim(db)["kind"] == "restart"  # the member's job first, though queued last
        assert jobs.claim(db)["kind"] == "backup"
        assert jobs.claim(db) is None  # another instance's backup waits for the running one


# ---- real LXD, through the web client -------------------------------------------------

class Site:
    """The live Warren of this module: an admin, member A with a busybox
    instance, member B with nothing."""


@pytest.fixture(scope="module")
def site(tmp_path_factory, settings, zone, busybox_image):
    folder = tmp_path_factory.mktemp("backups")
    warren = LiveWarren(folder, workers=1, worker=False)
    warren.env.update(WARREN_BACKUP_DIR=str(folder / "backups"), WARREN_BACKUP_INTERVAL_HOURS="0")
    tag = uuid.uuid4().hex[:6]
    names = {"admin": f"ba{tag}", "a": f"bm{tag}", "b": f"bo{tag}"}
    warren.add_member(names["admin"], role="admin")
    warren.add_member(names["a"])
    warren.add_member(names["b"])
    warren.start()
    worker = warren.run_worker()
    made = Site()
    made.live, made.folder, made.names, made.worker = warren, folder, names, worker
    made.admin, made.a, made.b = (warren.session(names[key]) for key in ("admin", "a", "b"))
    location = made.a.submit("/instances/new", made.a.token("/instances/new"), name="web",
                             profile="small", image="busybox", keys=KEY).headers["Location"]
    assert made.a.wait_settled(location)["status"] == "ready"
    made.location = location
    made.instance_id = int(location.rsplit("/", 1)[1])
    yield made
    database = folder / "warren.sqlite3"
    warren.stop()
    remove_names(database, zone)
    for username in names.values():
        lxd.delete_project(lxd.backend(settings), project_name(username))


def container(settings, site):
    scoped = lxd.backend(settings).client(project=project_name(site.names["a"]))
    with sqlite3.connect(site.folder / "warren.sqlite3") as db:
        name = db.execute("SELECT lxd_name FROM instances WHERE id = ?", [site.instance_id]).fetchone()[0]
    return lxd.get_instance(scoped, name)


def sh(settings, site, command: str) -> str:
    code, out, err = lxd.execute(container(settings, site), ["sh", "-c", command])
    assert code == 0, err
    return out.strip()


def backup_rows(site) -> list[dict]:
    with sqlite3.connect(site.folder / "warren.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM backups ORDER BY id")]


def instance_folder(site) -> Path:
    return site.folder / "backups" / "instances" / site.names["a"] / f"{site.instance_id}-web"


def backed_up(site) -> dict:
    """Wait until the newest backup of the module's instance settled; its row.
    (Retention may delete older rows meanwhile: one a day is kept.)"""
    newest = backup_rows(site)[-1]["id"]

    def settled():
        rows = [row for row in backup_rows(site) if row["id"] == newest]
        return rows[0] if rows and rows[0]["state"] in ("done", "failed") else None
    return wait_until(settled, timeout=90, message=f"backup {newest} settled")


def restored(site, timeout=90) -> list[dict]:
    def settled():
        progress = site.a.progress(site.location)
        return progress["events"] if progress["status"] == "ready" else None
    return wait_until(settled, timeout=timeout, message="the restore settled")


@pytest.mark.slow
@pytest.mark.serial
def test_a_worker_killed_mid_backup_leaves_no_partial_file_listed(site, settings):
    sh(settings, site, "echo version-one > /root/data.txt")
    site.live.stop_worker(site.worker)
    faulty = site.live.run_worker(fault_at="mid-backup")
    site.admin.submit("/admin/backups", site.admin.token("/admin/backups"))
    assert faulty.wait(timeout=120) == -9
    site.live.processes.remove(faulty)
    page = site.admin.get(site.live.base + "/admin/backups").text
    row = re.search(r'<tr data-instance="%d">.*?</tr>' % site.instance_id, page, re.S).group(0)
    assert "none" in row and "(backing up)" in row  # no good backup listed
    assert not [path for path in instance_folder(site).iterdir()
                if not path.name.startswith(backup_files.TEMP_PREFIX)]
    site.worker = site.live.run_worker()
    newest = backed_up(site)
    assert newest["state"] == "done", newest
    names = sorted(path.name for path in instance_folder(site).iterdir())
    assert names == [Path(newest["file"]).name, Path(newest["file"]).name + ".sha256"]
    page = site.admin.get(site.live.base + "/admin/backups").text
    assert newest["finished_at"][:16].replace("T", " ") in page


@pytest.mark.slow
def test_a_restore_brings_back_a_file_deleted_after_the_backup(site, settings):
    # 128 MiB of random data: LXD 5.0.2 hung on imports of its own compressed
    # optimized backups of this size (app/lxd/backups.py), so Warren has LXD
    # make the tarball plain and compresses it itself.
    sh(settings, site, "echo version-one > /root/data.txt; "
                       "head -c 134217728 /dev/urandom > /root/big.bin")
    big = sh(settings, site, "sha256sum /root/big.bin")
    site.a.submit(f"{site.location}/backups")
    backup = backed_up(site)
    assert backup["state"] == "done", backup
    stored = site.folder / "backups" / backup["file"]
    assert stored.name.endswith(".tar.zst")
    with open(stored, "rb") as handle:  # one zstd frame around LXD's plain tarball
        head = zstandard.ZstdDecompressor().stream_reader(handle).read(512)
    assert head.startswith(b"backup/index.yaml\0"), head[:40]
    sh(settings, site, "rm -f /root/data.txt /root/big.bin; echo later > /root/later.txt")
    confirm = site.a.get(f"{site.live.base}{site.location}/backups/{backup['id']}/restore").text
    assert "will be lost" in confirm and "It is running now" in confirm
    started = time.monotonic()
    response = site.a.submit(f"{site.location}/backups/{backup['id']}/restore")
    assert response.status_code == 303
    events = restored(site)
    print(f"restore took {time.monotonic() - started:.1f} s")
    assert any("Restored from the backup" in event["message"] for event in events)
    wait_until(lambda: container(settings, site).status == "Running", timeout=30)
    assert sh(settings, site, "cat /root/data.txt") == "version-one"
    assert sh(settings, site, "sha256sum /root/big.bin") == big
    assert sh(settings, site, "ls /root/later.txt 2>/dev/null || echo gone") == "gone"
    sh(settings, site, "rm /root/big.bin")


@pytest.mark.slow
def test_a_damaged_backup_is_refused_and_the_instance_stays_as_it_was(site, settings):
    backup = [row for row in backup_rows(site) if row["state"] == "done"][-1]
    path = site.folder / "backups" / backup["file"]
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF  # same size: only the checksum can tell
    path.write_bytes(bytes(damaged))
    sh(settings, site, "echo still-here > /root/marker.txt")
    try:
        site.a.submit(f"{site.location}/backups/{backup['id']}/restore")
        events = restored(site)
        assert any("Restore refused, nothing was changed" in event["message"]
                   and "damaged or truncated" in event["message"] for event in events)
        assert sh(settings, site, "cat /root/marker.txt") == "still-here"
        assert container(settings, site).status == "Running"
        assert backup_rows(site)[[row["id"] for row in backup_rows(site)].index(backup["id"])]["state"] == "failed"
    finally:
        path.write_bytes(original)
        with sqlite3.connect(site.folder / "warren.sqlite3") as db:  # good again, for the tests below
            db.execute("UPDATE backups SET state = 'done', error = NULL WHERE id = ?", [backup["id"]])


@pytest.mark.slow
def test_another_member_gets_404_on_the_backup_routes(site):
    backup = [row for row in backup_rows(site) if row["state"] == "done"][-1]
    base = f"{site.live.base}{site.location}/backups"
    assert site.b.get(base).status_code == 404
    assert site.b.get(f"{base}/{backup['id']}/restore").status_code == 404
    assert site.b.submit(f"{site.location}/backups/{backup['id']}/restore").status_code == 404
    assert site.b.submit(f"{site.location}/backups").status_code == 404
    assert site.b.get(site.live.base + "/admin/backups").status_code == 404
    assert site.b.submit(f"/admin/backups/{backup['id']}/restore").status_code == 404


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs, smaller than any instance backup."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)],
                   check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def worker_with(site, **settings):
    """Replace the module's worker by one with other settings."""
    site.live.stop_worker(site.worker)
    saved = dict(site.live.env)
    site.live.env.update(settings)
    site.worker = site.live.run_worker()
    site.live.env = saved


@pytest.mark.slow
def test_a_full_backup_disk_fails_clearly_and_keeps_the_older_backups(site, small_disk):
    before = [row for row in backup_rows(site) if row["state"] == "done"]
    (small_disk / "instances" / site.names["a"] / f"{site.instance_id}-web").mkdir(parents=True)
    worker_with(site, WARREN_BACKUP_DIR=str(small_disk))
    try:
        site.a.submit(f"{site.location}/backups")
        failed = backed_up(site)
        assert failed["state"] == "failed" and "the backup disk is full" in failed["error"]
        page = site.admin.get(site.live.base + "/admin/backups").text
        assert "the backup disk is full" in page
        assert [row for row in backup_rows(site) if row["state"] == "done"] == before
        assert not [path for path in small_disk.rglob("*") if path.is_file()]
    finally:
        worker_with(site)


@pytest.mark.slow
def test_retention_deletes_the_older_backup_on_a_real_instance(site):
    older = [row for row in backup_rows(site) if row["state"] == "done"]
    worker_with(site, WARREN_BACKUP_KEEP_DAILY="1", WARREN_BACKUP_KEEP_WEEKLY="0")
    try:
        site.a.submit(f"{site.location}/backups")
        wait_until(lambda: [row["id"] for row in backup_rows(site) if row["state"] == "done"]
                   and all(row["id"] not in [o["id"] for o in older]
                           for row in backup_rows(site) if row["state"] == "done"),
                   timeout=90, message="the older backups deleted by retention")
        kept = [row for row in backup_rows(site) if row["state"] == "done"]
        assert len(kept) == 1
        for row in older:
            assert not (site.folder / "backups" / row["file"]).exists()
        assert (site.folder / "backups" / kept[0]["file"]).exists()
    finally:
        worker_with(site)


@pytest.mark.slow
def test_an_admin_brings_back_a_deleted_instance(site, settings, zone):
    from app import dns
    sh(settings, site, "echo kept > /root/data.txt")
    site.a.submit(f"{site.location}/backups")
    backup = backed_up(site)
    assert backup["state"] == "done"
    manifest = json.loads(backup["manifest"])
    site.a.submit(f"{site.location}/delete")
    site.a.wait_gone(site.location)
    fqdn = manifest["instance"]["fqdn"]
    wait_until(lambda: dns.lookup(zone, fqdn) == [], timeout=30, message="the name removed")
    page = site.admin.get(site.live.base + "/admin/backups").text
    assert "(deleted)" in page
    response = site.admin.submit(f"/admin/backups/{backup['id']}/restore",
                                 site.admin.token("/admin/backups"))
    assert response.status_code == 303
    restored(site)
    assert dns.lookup(zone, fqdn) == [manifest["instance"]["ipv4"]]
    wait_until(lambda: container(settings, site).status == "Running", timeout=30)
    assert sh(settings, site, "cat /root/data.txt") == "kept"
    audit = site.admin.get(site.live.base + "/admin/audit").text
    assert "instance.restore-deleted" in audit and "instance.restore" in audit

