"""The ingress proxy's cost: requests per second and p50/p99 latency of a
small static page (busybox httpd in an instance) through the proxy in
terminate mode (HTTPS to HAProxy, plain HTTP on to the instance) against
the same page fetched straight from the instance, in the same run; and the
time from a route change (a member publishing the site) to the route
serving.

The deployed path: gunicorn and the worker (a scratch database), the
proxy started by ingress/haproxy.sh on a simulated Internet's host address
(tests/netsim.py), the site published over HTTP as a member would. wrk
runs on the host for both, so the two differ only by the proxy: the host's
/etc/hosts is left alone (wrk runs in a private mount namespace with its
own hosts file naming the site). No ACME directory: the proxy serves its
default certificate (same key type and TLS work as an issued one).

    bin/bench ingress [--seconds 5] [--rounds 3] [--connections 8] [-n 20]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from app import lxd  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.names import project_name  # noqa: E402
from live import LiveWarren  # noqa: E402
from netsim import Internet  # noqa: E402

KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d "
       "bench@warren")
PAGE = "<!doctype html><title>bench</title><p>" + "static page " * 40 + "</p>\n"


def wrk(url: str, seconds: int, connections: int, hosts: Path) -> dict:
    """Run wrk (2 threads) with a private /etc/hosts; requests/s, p50 and p99 in ms."""
    command = (f"mount --bind {hosts} /etc/hosts && exec wrk -t2 -c{connections} -d{seconds}s "
               f"--latency {url}")
    out = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True,
                         check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses from {url}:\n{out}")

    def latency(percent: str) -> float:
        value, unit = re.search(rf"\s{percent}%\s+([0-9.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
            "p50": latency("50"), "p99": latency("99")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/proxied rounds")
    parser.add_argument("--connections", type=int, default=8, help="wrk's open connections")
    parser.add_argument("-n", type=int, default=20, help="route changes to time")
    options = parser.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory() as folder, Internet() as internet:
        folder = Path(folder)
        ingress_env = {"WARREN_INGRESS_ADDRESS": internet.host_ip,
                       "WARREN_INGRESS_DIR": str(folder / "ingress"), "WARREN_LOG_DIR": str(folder)}
        warren = LiveWarren(folder, workers=2)
        warren.env.update(ingress_env)
        member = f"bi{str(int(time.time()))[-6:]}"
        warren.add_member(member)
        proxy = [str(REPO / "ingress" / "haproxy.sh")]
        subprocess.run(proxy + ["start"], env=dict(os.environ, **ingress_env), check=True)
        warren.start()
        location = None
        try:
            browser = warren.session(member)
            response = browser.submit("/instances/new", browser.token("/instances/new"), name="web",
                                      profile="small", image="busybox", keys=KEY)
            if response.status_code != 303:
                raise SystemExit(f"request refused: {response.status_code} {response.text[:500]}")
            location = response.headers["Location"]
            progress = browser.wait_settled(location)
            address, fqdn = progress["ipv4"], progress["fqdn"]
            client = lxd.backend(settings).client(project=project_name(member))
            lxd_name = next(name for name, config in lxd.instance_configs(client).items()
                            if config.get("user.warren.hostname") == "web")
            container = lxd.get_instance(client, lxd_name)
            lxd.push_file(container, "/www/index.html", PAGE, 0o644, directory_mode=0o755)
            lxd.execute(container, ["sh", "-c", "httpd -p 80 -h /www </dev/null >/dev/null 2>&1"])
            hosts = folder / "hosts"
            hosts.write_text(f"127.0.0.1 localhost\n{internet.host_ip} {fqdn}\n")

            def routed() -> bool:
                answer = requests.get(f"http://{internet.host_ip}/", headers={"Host": fqdn},
                                      allow_redirects=False, timeout=2)
                return answer.status_code == 301

            changes = []
            token = browser.token(location)
            for _ in range(options.n):
                browser.submit(location + "/site/delete", token)
                while routed():
                    time.sleep(0.005)
                started = time.monotonic()
                browser.submit(location + "/site", token, mode="terminate", port="80")
                while not routed():
                    time.sleep(0.005)
                changes.append(time.monotonic() - started)
            # wrk speaks HTTP/1.1 with keep-alive to the proxy; busybox httpd closes
            # each connection, so the direct run opens one per request (as the proxy
            # does). Rounds alternate, so load from elsewhere on the host hits both.
            runs = {"direct": [], "proxied": []}
            for _ in range(options.rounds):
                runs["direct"].append(wrk(f"http://{address}/", options.seconds,
                                          options.connections, hosts))
                runs["proxied"].append(wrk(f"https://{fqdn}/", options.seconds,
                                           options.connections, hosts))
        finally:
            if location:
                browser.submit(location + "/delete")
                browser.wait_gone(location)
            warren.stop()
            subprocess.run(proxy + ["stop"], env=dict(os.environ, **ingress_env))
    median = {kind: {key: statistics.median(run[key] for run in found) for key in ("rps", "p50", "p99")}
              for kind, found in runs.items()}
    print(f"static page, {options.connections} connections, {options.rounds} alternating rounds "
          f"of {options.seconds} s (wrk -t2), medians:")
    for name, kind in (("direct", "direct"), ("through ingress (TLS)", "proxied")):
        run = median[kind]
        print(f"  {name:24} {run['rps']:9.0f} req/s   p50 {run['p50']:6.2f} ms   p99 {run['p99']:6.2f} ms")
    direct, proxied = median["direct"], median["proxied"]
    print(f"  throughput ratio {proxied['rps'] / direct['rps']:.2f} (goal >= 0.8), "
          f"p99 {proxied['p99'] - direct['p99']:+.2f} ms (goal <= +2 ms)")
    print(f"route change -> serving: median {statistics.median(changes) * 1000:.0f} ms, "
          f"max {max(changes) * 1000:.0f} ms over {len(changes)} (goal <= 1000 ms)")


if __name__ == "__main__":
    main()
