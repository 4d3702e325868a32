"""The app as bin/up runs it: gunicorn with several workers, a real port."""
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """gunicorn serving 'app:create_app()' on a free loopback port, 4 workers."""
    port = free_port()
    env = dict(os.environ, WARREN_DATABASE=str(tmp_path / "w.sqlite3"),
               WARREN_SECRET_KEY="k" * 48, WARREN_ADMIN_PASSWORD="an admin password")
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run(flask + ["user", "ensure-admin"], cwd=REPO, env=env, check=True,
                   capture_output=True)
    log = open(tmp_path / "gunicorn.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "4",
         "app:create_app()"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(base + "/login", timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                log.close()
                pytest.fail("gunicorn did not start: " + (tmp_path / "gunicorn.log").read_text())
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(timeout=30)
    log.close()


def login(base: str, password: str) -> requests.Session:
    http = requests.Session()
    token = CSRF.search(http.get(base + "/login").text).group(1)
    http.post(base + "/login", data={"username": "admin", "password": password,
                                     "csrf_token": token}, allow_redirects=False)
    return http


def test_admin_logs_in_through_gunicorn_and_sessions_span_workers(server):
    http = login(server, "an admin password")
    # Many requests land on different workers; the server-side session holds on each.
    for _ in range(20):
        page = http.get(server + "/admin/users", allow_redirects=False)
        assert page.status_code == 200 and "admin" in page.text
    token = CSRF.search(http.get(server + "/").text).group(1)
    assert http.post(server + "/logout", data={"csrf_token": token},
                     allow_redirects=False).status_code == 302
    for _ in range(8):
        assert http.get(server + "/", allow_redirects=False).status_code == 302


def test_wrong_password_through_gunicorn(server):
    http = login(server, "not the admin password")
    assert http.get(server + "/", allow_redirects=False).status_code == 302
