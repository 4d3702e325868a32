"""The API's instance list under load: GET /api/v1/instances for a member
with --instances rows in the store, against Warren as bin/up runs it
(gunicorn, 4 workers), for --seconds with --clients concurrent clients.
Prints requests per second, p50 and p99 latency, and the LXD requests each
list request cost: Warren reaches LXD through a counting proxy on a unix
socket here (every HTTP request to LXD passes it), so the count is LXD's
own, not an estimate. Goal: at most 2 LXD requests per list request,
whatever the number of instances.

The rows are written straight into the scratch database (no containers:
the list reads LXD's state of the member's project in one request whatever
it holds). No worker runs.

    bin/bench api [--instances 1000] [--seconds 10] [--clients 8]
"""
import argparse
import os
import re
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from app.config import load_settings  # noqa: E402
from live import LiveWarren  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="warren-bench-api-") as folder:
        proxy = CountingProxy(os.path.join(folder, "lxd.socket"), settings.lxd_socket)
        warren = LiveWarren(folder, workers=4, worker=False)
        warren.env.update(WARREN_LXD_SOCKET=proxy.path, WARREN_API_RATE_PER_MINUTE="1000000")
        warren.start()
        try:
            warren.add_member("benchapi")
            headers = {"Authorization": f"Bearer {warren.token('benchapi')}"}
            fill(Path(folder) / "warren.sqlite3", "benchapi", args.instances)
            url = f"{warren.base}/api/v1/instances?per_page=50"
            local = threading.local()

            def one() -> float:
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                    local.session.trust_env = False
                start = time.perf_counter()
                response = local.session.get(url, headers=headers, timeout=30)
                elapsed = time.perf_counter() - start
                if response.status_code != 200:
                    raise SystemExit(f"GET {url}: {response.status_code} {response.text[:300]}")
                return elapsed

            for _ in range(20):  # warm every worker up (its LXD client, imports)
                one()
            total = requests.get(url, headers=headers, timeout=30).json()
            before, latencies = proxy.count, []
            deadline = time.monotonic() + args.seconds
            started = time.monotonic()

            def loop() -> list[float]:
                mine = []
                while time.monotonic() < deadline:
                    mine.append(one())
                return mine

            with ThreadPoolExecutor(args.clients) as pool:
                for result in pool.map(lambda _: loop(), range(args.clients)):
                    latencies += result
            wall = time.monotonic() - started
            calls = proxy.count - before
        finally:
            warren.stop()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"GET /api/v1/instances (page of {len(total['items'])}, {args.instances} instances in the "
          f"store), gunicorn 4 workers, {args.clients} clients, {wall:.1f} s")
    print(f"  requests:          {len(latencies)}  ({len(latencies) / wall:.0f} req/s)")
    print(f"  latency:           p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms")
    print(f"  LXD requests:      {calls} ({calls / len(latencies):.2f} per list request; goal <= 2)")


if __name__ == "__main__":
    main()
