"""Warren as bin/up runs it, on a scratch database: gunicorn (4 workers of
threads, app/gunicorn_config.py) and the worker process, driven over HTTP.
Used by the tests and bench/."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from support import CSRF

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "live password 1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveWarren:
    """Start with .start(), stop with .stop(); folder holds the database and logs."""

    def __init__(self, folder, workers: int = 4, worker: bool = True, access_log: bool = False):
        self.folder = Path(folder)
        # gunicorn's access log (folder/access.log), as bin/app.sh writes it, when asked for
        self.access_log = self.folder / "access.log" if access_log else None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, WARREN_DATABASE=str(self.folder / "warren.sqlite3"),
                        WARREN_SECRET_KEY="l" * 48,
                        WARREN_WORKER_SOCKET=str(self.folder / "worker.sock"),
                        # its backups stay with it, never in the real Warren's directory
                        WARREN_BACKUP_DIR=str(self.folder / "backups"),
                        PYTHONUNBUFFERED="1")  # a killed process's last lines stay in the log
        self.workers = workers
        self.with_worker = worker
        self.processes: list[subprocess.Popen] = []

    def flask(self, *args: str, stdin: str | None = None) -> str:
        """Run a `flask --app app` command against this Warren's database."""
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO,
                                env=self.env, input=stdin, text=True, capture_output=True)
        if result.returncode:
            raise RuntimeError(f"flask {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def add_member(self, username: str, *quota: str, role: str = "member") -> None:
        """Create an account (password PASSWORD), with optional set-quota arguments."""
        self.flask("user", "create", username, "--role", role, "--password-stdin",
                   stdin=PASSWORD + "\n")
        if quota:
            self.flask("user", "set-quota", username, *quota)

    def start(self) -> "LiveWarren":
        self.log = open(self.folder / "processes.log", "w")
        self.flask("db", "migrate")
        if self.with_worker:
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=REPO, env=self.env,
                stdout=self.log, stderr=self.log))
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_config",
             "--workers", str(self.workers), "--bind",
             f"127.0.0.1:{self.port}", "--logger-class", "app.accesslog.RedactingLogger",
             *(["--access-logfile", str(self.access_log)] if self.access_log else []),
             "app:create_app()"], cwd=REPO, env=self.env,
            stdout=self.log, stderr=self.log))
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.base + "/login", timeout=5)
                return self
            except requests.RequestException:  # not listening yet, or a cold first request
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                    self.stop()
                    raise RuntimeError("Warren did not start: "
                                       + (self.folder / "processes.log").read_text()[-2000:])
                time.sleep(0.2)

    def run_worker(self, fault_at: str = "") -> subprocess.Popen:
        """Start one more worker process (fault_at: the step where it SIGKILLs itself)."""
        process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"],
                                   cwd=REPO, env=dict(self.env, WARREN_FAULT_AT=fault_at),
                                   stdout=self.log, stderr=self.log)
        self.processes.append(process)
        return process

    def stop_worker(self, process: subprocess.Popen) -> None:
        process.terminate()
        try:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                # Seen rarely under load: a SIGTERM that the worker's handler
                # never ran (its threads all idle). Say so, and ask again.
                process.send_signal(signal.SIGUSR1)
                print(f"worker {process.pid} ignored SIGTERM for 60 s; sent it again")
                process.terminate()
                process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # `flask worker` prints its threads' stacks
            time.sleep(2)
            process.kill()
            process.wait()
            raise AssertionError("the worker did not stop within 120 s of SIGTERM; its log ends: "
                                 + (self.folder / "processes.log").read_text()[-6000:]) from None
        finally:
            self.processes.remove(process)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=120)
        self.processes.clear()
        self.log.close()

    def token(self, username: str, scope: str = "member", name: str = "tests") -> str:
        """A new API token of the user, made through the web UI's Tokens page."""
        browser = self.session(username)
        page = browser.submit("/tokens", browser.token("/tokens"), name=name, scope=scope, days="7")
        assert page.status_code == 200, page.text[:2000]
        return re.search(r'<code class="token">(wrn_[^<]+)</code>', page.text).group(1)

    def session(self, username: str, password: str = PASSWORD) -> "Browser":
        browser = Browser(self.base)
        browser.login(username, password)
        return browser


class Browser(requests.Session):
    """A signed-in HTTP client that fills CSRF tokens like a browser."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base

    def token(self, path: str = "/") -> str:
        return CSRF.search(self.get(self.base + path).text).group(1)

    def login(self, username: str, password: str) -> requests.Response:
        return self.post(self.base + "/login", allow_redirects=False, data={
            "username": username, "password": password, "csrf_token": self.token("/login")})

    def submit(self, path: str, token: str | None = None, **data) -> requests.Response:
        """POST a form; token from a page loaded before (else fetched now)."""
        data["csrf_token"] = token or self.token("/")
        return self.post(self.base + path, data=data, allow_redirects=False)

    def progress(self, location: str) -> dict | None:
        response = self.get(self.base + location + "/progress")
        return None if response.status_code == 404 else response.json()

    def wait_settled(self, location: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            progress = self.progress(location)
            if progress and progress["status"] in ("ready", "failed", "delete-failed"):
                return progress
            time.sleep(0.1)
        raise TimeoutError(f"{location} did not settle: {progress}")

    def wait_gone(self, location: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.progress(location) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{location} was not deleted")
            time.sleep(0.1)


class SourceAddressAdapter(HTTPAdapter):
    """Connects from a chosen local address, e.g. 127.0.0.2, as another machine would."""

    def __init__(self, address: str, **kwargs):
        self.address = address  # before super().__init__, which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def browser_from(base: str, address: str) -> Browser:
    """A Browser whose connections come from this loopback address (127.x.y.z)."""
    browser = Browser(base)
    browser.mount("http://", SourceAddressAdapter(address))
    return browser
