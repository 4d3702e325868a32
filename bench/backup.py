"""Backing up and restoring a 1 GiB instance: Warren against `lxc export` /
`lxc import` of the same instance in the same run, and the incremental
cost of a second off-host copy (restic).

Warren: the deployed path (gunicorn and the worker on a scratch database,
driven over HTTP): from the member's "Back up now" until the backup is a
checksummed file in the backup directory; from "Restore" until the
instance runs again from it (checksum read, instance replaced, started,
DNS name published). Baseline, same instance, same compression and
optimized (btrfs) storage: `lxc export --optimized-storage --instance-only`
(LXD compressing), and `lxc delete --force` + `lxc import` + `lxc start`
of that export decompressed first, untimed (LXD 5.0.2 hangs importing
its own compressed optimized backups of this size: app/lxd/backups.py).
Rounds alternate (Warren, baseline, ...); medians and ratios are printed.

    bin/bench backup [-n 3] [--size-mib 1024] [--compression zstd]

Then the off-host copy: the backup directory copied into a fresh restic
repository, one small file changed in the instance, a second backup, a
second copy: restic's bytes added by each copy.
"""
import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from app import lxd, offsite  # noqa: E402
from app.config import Settings, load_settings  # noqa: E402
from app.names import project_name  # noqa: E402
from live import LiveWarren  # noqa: E402

KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d "
       "bench@warren")


def newest_backup(database: Path) -> dict:
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM backups ORDER BY id DESC LIMIT 1").fetchone())


def wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"{what} did not happen within {timeout}s")


def lxc(*args: str) -> None:
    subprocess.run(["lxc", *args], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--compression", default="zstd", choices=("zstd", "none"))
    options = parser.parse_args()
    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=settings.data_dir))
    warren = LiveWarren(work, workers=2)
    # Passes at start only: the reconcile pass would take the baseline's
    # delete + import for a vanished instance and restore it itself.
    warren.env.update(WARREN_BACKUP_DIR=str(work / "backups"), WARREN_BACKUP_INTERVAL_HOURS="0",
                      WARREN_BACKUP_COMPRESSION=options.compression, WARREN_RECONCILE_SECONDS="86400")
    member = f"bb{uuid.uuid4().hex[:8]}"
    project = project_name(member)
    warren.add_member(member)
    warren.start()
    try:
        session = warren.session(member)
        location = session.submit("/instances/new", session.token("/instances/new"), name="big",
                                  profile="small", image="busybox", keys=KEY).headers["Location"]
        assert session.wait_settled(location)["status"] == "ready"
        scoped = lxd.backend(settings).client(project=project)
        name = next(lxd_name for lxd_name, config in lxd.instance_configs(scoped).items()
                    if config.get("user.warren.hostname") == "big")
        code, _, err = lxd.execute(lxd.get_instance(scoped, name), [
            "sh", "-c", f"head -c {options.size_mib * 1024 * 1024} /dev/urandom > /root/blob && sync"])
        assert code == 0, err
        export, plain = work / "export.tar.zst", work / "export.tar"
        rounds = {"warren backup": [], "lxc export": [], "warren restore": [], "lxc import": []}
        sizes = {}
        for _ in range(options.n):
            started = time.monotonic()
            session.submit(f"{location}/backups")
            row = wait(lambda: (lambda r: r if r["state"] in ("done", "failed") else None)(
                newest_backup(work / "warren.sqlite3")), 1800, "the backup")
            assert row["state"] == "done", row
            rounds["warren backup"].append(time.monotonic() - started)
            sizes["warren"] = row["size"]

            started = time.monotonic()
            lxc("export", "--project", project, name, str(export), "--optimized-storage",
                "--instance-only", "--compression", options.compression)
            rounds["lxc export"].append(time.monotonic() - started)
            sizes["lxc export"] = export.stat().st_size
            if options.compression == "none":
                export.rename(plain)
            else:
                subprocess.run(["zstd", "-d", "-q", "-f", str(export), "-o", str(plain)], check=True)

            started = time.monotonic()
            session.submit(f"{location}/backups/{row['id']}/restore")
            wait(lambda: any("Restored from the backup" in event["message"]
                             for event in session.progress(location)["events"][-3:])
                 and session.progress(location)["status"] == "ready", 1800, "the restore")
            rounds["warren restore"].append(time.monotonic() - started)

            started = time.monotonic()
            lxc("delete", "--project", project, "--force", name)
            lxc("import", "--project", project, str(plain), "--storage", settings.lxd_storage_pool)
            lxc("start", "--project", project, name)
            rounds["lxc import"].append(time.monotonic() - started)
        median = {key: statistics.median(values) for key, values in rounds.items()}
        print(f"{options.size_mib} MiB of random data, busybox, btrfs, compression "
              f"{options.compression}, {options.n} alternating rounds (medians):")
        print(f"  backup:  Warren {median['warren backup']:.2f} s ({sizes['warren']} bytes), "
              f"lxc export {median['lxc export']:.2f} s ({sizes['lxc export']} bytes), ratio "
              f"{median['warren backup'] / median['lxc export']:.2f}")
        print(f"  restore: Warren {median['warren restore']:.2f} s, lxc delete+import+start "
              f"{median['lxc import']:.2f} s, ratio {median['warren restore'] / median['lxc import']:.2f}")

        repository = Settings(load_settings({"backup_dir": str(work / "backups")}),
                              backup_offsite_repository=str(work / "restic"),
                              backup_offsite_password_file=str(work / "restic-password"))
        started = time.monotonic()
        first = offsite.copy(repository)
        first_time = time.monotonic() - started
        code, _, err = lxd.execute(lxd.get_instance(scoped, name),
                                   ["sh", "-c", "echo changed > /root/small-change && sync"])
        assert code == 0, err
        session.submit(f"{location}/backups")
        wait(lambda: (lambda r: r if r["state"] == "done" and r["id"] != row["id"] else None)(
            newest_backup(work / "warren.sqlite3")), 1800, "the second backup")
        started = time.monotonic()
        second = offsite.copy(repository)
        second_time = time.monotonic() - started
        print(f"  off-host copy (restic): first {first['data_added']} bytes added in "
              f"{first_time:.1f} s; after a small change and a second backup "
              f"{second['data_added']} bytes added in {second_time:.1f} s")
    finally:
        warren.stop()
        lxd.delete_project(lxd.backend(settings), project)
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    os.umask(0o077)
    main()
