"""Fair share of the worker: how long a member's request takes to become
ready while another member floods the worker with restart requests,
against the same request on a quiet worker, in the same run.

The deployed path: gunicorn (4 workers) and the worker process on a scratch
database, driven over HTTP. Member A has four busybox instances and sends
--flood restart requests (16 at a time); as soon as they are in, member B
requests a busybox instance and the clock runs from B's POST until B's
instance is ready. The quiet baseline is the same request with nothing else
queued. Runs are interleaved (quiet, flooded, quiet, ...). Prints both
medians, their ratio, and how many jobs each flood left waiting.

    bin/bench fairness [-n 5] [--flood 500]
"""
import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from app import lxd  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.names import project_name  # noqa: E402
from live import LiveWarren  # noqa: E402

KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d "
       "bench@warren")


def request(browser, name: str) -> str:
    response = browser.submit("/instances/new", browser.token("/instances/new"), name=name,
                              profile="small", image="busybox", keys=KEY)
    if response.status_code != 303:
        raise SystemExit(f"request {name} refused: {response.status_code} {response.text[:300]}")
    return response.headers["Location"]


def timed_request(browser, name: str) -> float:
    started = time.monotonic()
    location = request(browser, name)
    if browser.wait_settled(location, timeout=300)["status"] != "ready":
        raise SystemExit(f"{name} failed")
    elapsed = time.monotonic() - started
    browser.submit(location + "/delete")
    browser.wait_gone(location, timeout=120)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each kind")
    parser.add_argument("--flood", type=int, default=500, help="restart requests per flood")
    options = parser.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory() as folder:
        warren = LiveWarren(folder, workers=4)
        stamp = str(int(time.time()))[-6:]
        flooder, neighbour = f"bfa{stamp}", f"bfb{stamp}"
        warren.add_member(flooder)
        warren.add_member(neighbour)
        warren.start()
        try:
            a, b = warren.session(flooder), warren.session(neighbour)
            locations = [request(a, f"w{number}") for number in range(4)]
            for location in locations:
                a.wait_settled(location)
            token = a.token("/")
            quiet, flooded, left = [], [], []
            for run in range(options.n):
                quiet.append(timed_request(b, f"q{run}"))
                with ThreadPoolExecutor(max_workers=16) as pool:
                    list(pool.map(lambda index: a.submit(f"{locations[index % 4]}/restart", token),
                                  range(options.flood)))
                with sqlite3.connect(Path(folder) / "warren.sqlite3") as db:
                    left.append(db.execute("SELECT count(*) FROM jobs WHERE state IN "
                                           "('pending', 'running')").fetchone()[0])
                flooded.append(timed_request(b, f"f{run}"))
                time.sleep(3)  # let the flood's last jobs drain before the next quiet run
        finally:
            warren.stop()
            for member in (flooder, neighbour):
                lxd.delete_project(lxd.backend(settings), project_name(member))
    quiet_median, flooded_median = statistics.median(quiet), statistics.median(flooded)
    print(f"request to ready, quiet worker:   median {quiet_median:.2f} s  ({', '.join(f'{t:.2f}' for t in quiet)})")
    print(f"request to ready, after {options.flood} restarts from another member: "
          f"median {flooded_median:.2f} s  ({', '.join(f'{t:.2f}' for t in flooded)})")
    print(f"jobs waiting or running after each flood: {left}")
    print(f"ratio flooded/quiet: {flooded_median / quiet_median:.2f}")


if __name__ == "__main__":
    main()
