"""Parallel test workers (pytest-xdist), each with a Warren of its own.

bin/test runs the whole suite in several worker processes. Two workers must
not share what one Warren owns alone: the bridge that hands out addresses,
named and its zone file, the data directory (test-setup database, SSH
host keys, sockets). So each worker gets its own bridge, address range,
data and log directories and named ports, derived from its number, and sets
them up before any test runs. What is the host's anyway stays shared: the
LXD daemon, the image cache, the VM test daemon.

Outside xdist (bin/test with arguments, pytest by hand) nothing changes.
"""
import os
import subprocess
from pathlib import Path

from app.config import KEYS, PREFIX
from support import sweep_bridge

REPO = Path(__file__).resolve().parent.parent


def worker_index() -> int | None:
    """This process's xdist worker number (gw0 -> 0), None outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") else None


def worker_environment(environ: dict, index: int) -> dict:
    """The environment of worker `index`: environ with the Warren-owned
    settings moved to the worker's own, and every setting whose default
    follows them (the database, named's directory, ...) left to follow."""
    derived = {PREFIX + key.name.upper() for key in KEYS if "{" in key.default}
    own = {name: value for name, value in environ.items() if name not in derived}
    data_dir = f"{environ.get('WARREN_DATA_DIR', '/var/lib/warren')}/test-gw{index}"
    own.update({
        "WARREN_DATA_DIR": data_dir,
        "WARREN_LOG_DIR": f"{environ.get('WARREN_LOG_DIR', '/var/log/warren')}/test-gw{index}",
        "WARREN_DATABASE": f"{data_dir}/test-setup.sqlite3",
        # Built images are the host's: every worker imports the same ones.
        "WARREN_IMAGE_CACHE": environ.get("WARREN_IMAGE_CACHE", "/var/lib/warren/images"),
        "WARREN_LXD_NETWORK": f"warrenshard{index}",
        "WARREN_NETWORK_ADDRESS": f"10.{110 + index}.0.1/24",
        "WARREN_DNS_PORT": str(5400 + 10 * index),
        "WARREN_DNS_CONTROL_PORT": str(5401 + 10 * index),
        "WARREN_SSH_PORT": str(2300 + index),
    })
    return own


SETUP = """
. bin/lib/common.sh
load_config
ensure_secret_key
warren_cli host setup-lxd
dns/named.sh start
"""


def isolate_worker() -> None:
    """In an xdist worker: switch this process to the worker's own Warren
    settings and set up its bridge and named (idempotent)."""
    index = worker_index()
    if index is None:
        _sweep_the_test_bridge()
        return
    environment = worker_environment(dict(os.environ), index)
    os.environ.clear()
    os.environ.update(environment)
    for suffix in ("", "-wal", "-shm"):  # the setup's scratch database: fresh each run
        Path(environment["WARREN_DATABASE"] + suffix).unlink(missing_ok=True)
    setup = subprocess.run(["bash", "-c", SETUP], cwd=REPO, env=os.environ, capture_output=True,
                           text=True)
    if setup.returncode != 0:
        raise RuntimeError(f"setting up test worker gw{index} failed:\n{setup.stdout}{setup.stderr}")
    # What an interrupted earlier run left on this worker's bridge would
    # hold the addresses this run's fresh databases hand out again.
    from app.config import load_settings
    sweep_bridge(load_settings().lxd_socket, os.environ["WARREN_LXD_NETWORK"])


def _sweep_the_test_bridge() -> None:
    """One process (bin/test's serial part, or a run of named files): what an
    interrupted run left on bin/test's test bridge would hold the addresses
    this run's fresh databases hand out again. Only that bridge, as bin/test
    names it: never one a real Warren may use."""
    bridge = os.environ.get("WARREN_LXD_NETWORK")
    if not bridge or bridge != os.environ.get("WARREN_TEST_NETWORK", "warrentest0"):
        return
    from app.config import load_settings
    sweep_bridge(load_settings().lxd_socket, bridge)
