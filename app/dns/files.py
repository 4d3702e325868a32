"""named's files as Warren's backup sees them: the zone file with its
journal, the TSIG keys (Warren's, rndc's, the transfer key, the members'
fragments) and the DNSSEC keys, all in WARREN_DNS_DIR."""
import subprocess
from pathlib import Path

# Made again by named or named.sh at start, or only a lock: not worth keeping.
TRANSIENT = {"named.pid", "session.key", "keys.lock", "reload-owed"}


def sync_zone(settings) -> str | None:
    """Have named write the zone's journal into its zone file (rndc sync),
    so the copy that follows holds every update in both; the reason when
    named could not be asked (stopped: its files are at rest anyway)."""
    command = ["rndc", "-k", f"{settings.dns_dir}/rndc.key", "-s", "127.0.0.1",
               "-p", str(settings.dns_control_port), "sync", settings.dns_zone]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return (result.stderr or result.stdout).strip()[:300] or "rndc failed" if result.returncode else None


def state_files(settings) -> list[Path]:
    """The files of named's state, relative to the DNS directory (not
    named's own temporary files, tmp-*, which come and go)."""
    folder = Path(settings.dns_dir)
    if not folder.is_dir():
        return []
    return sorted(path.relative_to(folder) for path in folder.rglob("*")
                  if path.is_file() and path.name not in TRANSIENT
                  and not path.name.endswith(".tmp") and not path.name.startswith("tmp-"))
