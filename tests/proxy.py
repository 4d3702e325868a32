"""The ingress proxy as tests run it: ingress/haproxy.sh with a test's
settings, and curl from the simulated Internet (tests/netsim.py) with names
resolved to the proxy's public address."""
import os
import re
import subprocess
from pathlib import Path

from conftest import REPO

SCRIPT = str(REPO / "ingress" / "haproxy.sh")


class Proxy:
    """ingress/haproxy.sh with the test's settings."""

    def __init__(self, settings, log_dir: Path):
        self.env = dict(os.environ, WARREN_INGRESS_DIR=settings.ingress_dir,
                        WARREN_INGRESS_ADDRESS=settings.ingress_address, WARREN_LOG_DIR=str(log_dir))

    def run(self, action: str) -> None:
        result = subprocess.run([SCRIPT, action], env=self.env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def curl(internet, url: str, *options: str) -> subprocess.CompletedProcess:
    """curl from the Internet, the names resolved to the public address."""
    host = re.match(r"https?://([^/:]+)", url).group(1)
    port = "443" if url.startswith("https") else "80"
    return internet.run("curl", "-sS", "--max-time", "10", "--resolve",
                        f"{host}:{port}:{internet.host_ip}", *options, url)
