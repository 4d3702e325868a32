"""The API's instance list under load: GET /api/v1/instances for a member
with --instances rows in the store, against Warren as bin/up runs it
(gunicorn, 4 workers), for --seconds with --clients concurrent clients.
Prints requests per second, p50 and p99 latency, and the LXD requests each
list request cost. The clients are processes of their own, and Warren
talks to LXD's socket directly while they run; the LXD requests are then
counted over 200 list requests of a second Warren that reaches LXD through
a counting proxy on a unix socket (every HTTP request to LXD passes it),
so the count is LXD's own, not an estimate, and the proxy's own cost is
not in the latency. Goals: p99 under 50 ms with 4 gunicorn workers; at
most 2 LXD requests per list request, whatever the number of instances.

The rows are written straight into the scratch database (no containers:
the list reads LXD's state of the member's project in one request whatever
it holds). No worker runs.

    bin/bench api [--instances 1000] [--seconds 10] [--clients 8]
"""
import argparse
import multiprocessing
import os
import re
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from app.config import load_settings  # noqa: E402
from live import LiveWarren  # noqa: E402

COUNTED = 200  # list requests the LXD requests are counted over
REQUEST_LINE = re.compile(rb"(?:^|\r\n)(GET|POST|PUT|PATCH|DELETE) /1\.0")


class CountingProxy:
    """A unix-socket proxy in front of LXD's socket that counts requests."""

    def __init__(self, path: str, target: str):
        self.path, self.target, self.count = path, target, 0
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(64)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.server.accept()
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            threading.Thread(target=self.pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, client, False), daemon=True).start()

    def pipe(self, source, sink, counting: bool):
        try:
            while data := source.recv(65536):
                if counting:
                    with self.lock:
                        self.count += len(REQUEST_LINE.findall(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def fill(database: Path, username: str, count: int) -> None:
    db = sqlite3.connect(database)
    user = db.execute("SELECT id FROM users WHERE username = ?", [username]).fetchone()[0]
    stamp = "2026-01-01T00:00:00+00:00"
    db.executemany(
        "INSERT INTO instances (user_id, name, lxd_name, project, profile, image, instance_type, "
        "fqdn, ipv4, ssh_keys, cpu, memory, disk, processes, status, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, 'small', 'busybox', 'container', ?, ?, '', 1, 1, 1, 1, 'ready', ?, ?)",
        [(user, f"b{n}", f"bench-{n}-{username}", f"warren-{username}", f"b{n}.{username}.bench.test",
          f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", stamp, stamp) for n in range(count)])
    db.commit()
    db.close()


def client(job: tuple) -> list[float]:
    """One closed-loop client (a process of its own, so that the clients do
    not queue on one interpreter lock): its latencies until the deadline."""
    url, headers, deadline = job
    session = requests.Session()
    session.trust_env = False
    latencies = []
    while time.monotonic() < deadline:
        start = time.perf_counter()
        response = session.get(url, headers=headers, timeout=30)
        latencies.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: {response.status_code} {response.text[:300]}")
    return latencies


def measure(warren: LiveWarren, url: str, headers: dict, clients: int, seconds: float) -> tuple:
    """Warm every gunicorn worker up, then run the clients; (latencies, wall)."""
    with requests.Session() as session:
        for _ in range(20):  # every worker's LXD client, imports
            session.get(url, headers=headers, timeout=30).raise_for_status()
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        results = pool.map(client, [(url, headers, started + seconds)] * clients)
    return sorted(latency for result in results for latency in result), time.monotonic() - started


def started_warren(folder: str, instances: int, lxd_socket: str) -> tuple:
    warren = LiveWarren(folder, workers=4, worker=False)
    warren.env.update(WARREN_LXD_SOCKET=lxd_socket, WARREN_API_RATE_PER_MINUTE="1000000")
    warren.start()
    warren.add_member("benchapi")
    headers = {"Authorization": f"Bearer {warren.token('benchapi')}"}
    fill(Path(folder) / "warren.sqlite3", "benchapi", instances)
    return warren, headers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    settings = load_settings()
    # Latency first, Warren on LXD's own socket; then the LXD requests,
    # through the counting proxy (which costs time of its own).
    with tempfile.TemporaryDirectory(prefix="warren-bench-api-") as folder:
        warren, headers = started_warren(folder, args.instances, settings.lxd_socket)
        url = f"{warren.base}/api/v1/instances?per_page=50"
        try:
            page = requests.get(url, headers=headers, timeout=30).json()
            latencies, wall = measure(warren, url, headers, args.clients, args.seconds)
        finally:
            warren.stop()
    with tempfile.TemporaryDirectory(prefix="warren-bench-api-") as folder:
        proxy = CountingProxy(os.path.join(folder, "lxd.socket"), settings.lxd_socket)
        warren, headers = started_warren(folder, args.instances, proxy.path)
        url = f"{warren.base}/api/v1/instances?per_page=50"
        try:
            with requests.Session() as session:
                session.get(url, headers=headers, timeout=30).raise_for_status()
                before = proxy.count
                for _ in range(COUNTED):
                    session.get(url, headers=headers, timeout=30).raise_for_status()
                calls = proxy.count - before
        finally:
            warren.stop()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"GET /api/v1/instances (page of {len(page['items'])}, {args.instances} instances in the "
          f"store), gunicorn 4 workers, {args.clients} clients, {wall:.1f} s")
    print(f"  requests:          {len(latencies)}  ({len(latencies) / wall:.0f} req/s)")
    print(f"  latency:           p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms (goal p99 < 50 ms)")
    print(f"  LXD requests:      {calls} for {COUNTED} list requests ({calls / COUNTED:.2f} each; "
          "goal <= 2)")


if __name__ == "__main__":
    main()
