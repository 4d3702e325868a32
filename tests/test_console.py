"""The instance console over Warren's websocket, driven by a plain
websocket client (websocket-client) against Warren as bin/up runs it:
gunicorn with threaded workers, the worker process, real LXD and named.
The busybox image has a shell on its console (images/busybox/inittab).

One Warren serves the whole module, with ONE gunicorn worker: pages that
still answer while consoles are open can only come from its threads."""
import re
import shutil
import sqlite3
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket

from app import lxd
from app.names import project_name
from live import REPO, LiveWarren
from support import KEY, console_operations, open_jobs, remove_names, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.lxd, pytest.mark.named]
PROVISIONING = 120
CONSOLES = 2  # WARREN_MEMBER_CONSOLES of this module's Warren


class Member:
    """A signed-in HTTP session of a live Warren's member."""

    def __init__(self, live, username: str, role: str = "member"):
        live.add_member(username, role=role)
        live.members.append(username)
        self.username = username
        self.session = live.session(username)

    def launch(self, name: str) -> int:
        """Request a busybox instance and wait until it is ready; its id."""
        location = self.session.submit("/instances/new", self.session.token("/instances/new"),
                                       name=name, profile="small", image="busybox",
                                       keys=KEY).headers["Location"]
        assert self.session.wait_settled(location, timeout=PROVISIONING)["status"] == "ready"
        return int(location.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory, settings, zone):
    folder = tmp_path_factory.mktemp("console")
    shutil.copytree(REPO / "profiles", folder / "profiles")
    warren = LiveWarren(folder, workers=1)
    warren.env.update(WARREN_PROFILES_DIR=str(folder / "profiles"),
                      WARREN_MEMBER_CONSOLES=str(CONSOLES))
    warren.members = []
    yield warren.start()
    database = folder / "warren.sqlite3"
    wait_until(lambda: not open_jobs(database), timeout=PROVISIONING, message="every job finished")
    warren.stop()
    remove_names(database, zone)
    for username in warren.members:
        lxd.delete_project(lxd.backend(settings), project_name(username))


@pytest.fixture(scope="module")
def owner(live, busybox_image):
    """A member with two running busybox instances: owner.name (id
    owner.instance_id) and owner.second_name (owner.second_id)."""
    member = Member(live, f"c{uuid.uuid4().hex[:8]}")
    member.name = f"box{uuid.uuid4().hex[:6]}"  # the instance's hostname inside
    member.second_name = f"two{uuid.uuid4().hex[:6]}"
    member.instance_id = member.launch(member.name)
    member.second_id = member.launch(member.second_name)
    return member


@pytest.fixture(autouse=True)
def consoles_closed(settings, owner):
    """Each test ends with the owner's consoles closed in LXD too (LXD
    lets one client at a time attach to an instance's console)."""
    yield
    for name in (owner.name, owner.second_name):
        wait_until(lambda: not console_operations(settings, owner.username, name), timeout=15,
                   message=f"the consoles of {name} closed")


@pytest.fixture(scope="module")
def other(live):
    return Member(live, f"o{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def admin(live):
    return Member(live, f"a{uuid.uuid4().hex[:8]}", role="admin")


def open_socket(live, instance_id: int, session: requests.Session | None = None,
                origin: str | None = None) -> websocket.WebSocket:
    """The console socket as a browser opens it: the session's cookie and
    the page's origin (another one when given)."""
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies) if session else None
    url = (live.base.replace("http://", "ws://")
           + f"/instances/{instance_id}/console/socket?columns=100&rows=30")
    return websocket.create_connection(url, cookie=cookie, origin=origin or live.base, timeout=15)


def read_for(socket: websocket.WebSocket, pattern: str, timeout: float) -> str | None:
    """What the console sent until the pattern (a regex) showed up in it;
    None if it did not within the timeout."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        socket.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            opcode, data = socket.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            pytest.fail(f"the console closed ({close_reason(data)}) before {pattern!r}: {seen!r}")
        seen += data
        if re.search(pattern, seen.decode(errors="replace"), re.MULTILINE):
            return seen.decode(errors="replace")
    return None


def close_reason(data: bytes) -> tuple[int, str]:
    """A close frame's code and reason."""
    return (struct.unpack("!H", data[:2])[0], data[2:].decode()) if len(data) >= 2 else (1005, "")


def closed_with(socket: websocket.WebSocket, timeout: float = 15) -> tuple[int, str]:
    """The code and reason of the server's close (output before it skipped)."""
    socket.settimeout(timeout)
    while True:
        opcode, data = socket.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return close_reason(data)


def type_hostname(socket: websocket.WebSocket, name: str) -> None:
    """Press Enter until the console's shell prompts (it starts a moment
    after the instance is ready), type `hostname`, read the name back."""
    deadline = time.monotonic() + 30
    while not read_for(socket, r"# ", timeout=1) and time.monotonic() < deadline:
        socket.send_binary(b"\r")
    socket.send_binary(b"hostname\r")
    assert read_for(socket, rf"^{name}\r*$", timeout=15), f"{name} did not show up in the console"


def refusal(live, instance_id, session=None, origin=None) -> int:
    """The HTTP status of a refused handshake (the test fails if it was accepted)."""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_socket(live, instance_id, session, origin).close()
    return refused.value.status_code


def audit_rows(live, action: str) -> list[tuple]:
    with sqlite3.connect(live.folder / "warren.sqlite3") as db:
        return db.execute("SELECT actor, member, result, detail FROM audit WHERE action = ?",
                          [action]).fetchall()


def test_the_owner_types_into_the_console_and_reads_the_hostname(live, owner):
    socket = open_socket(live, owner.instance_id, owner.session)
    try:
        type_hostname(socket, owner.name)
    finally:
        socket.close()


def test_closing_the_socket_ends_the_lxd_console_operation(live, owner, settings):
    socket = open_socket(live, owner.instance_id, owner.session)
    type_hostname(socket, owner.name)
    # seen while open, so the check below can see one
    assert len(console_operations(settings, owner.username, owner.name)) == 1
    socket.close()
    wait_until(lambda: not console_operations(settings, owner.username, owner.name), timeout=15,
               message="LXD's console operation ended")


def test_member_b_cannot_open_member_a_console(live, owner, other, settings):
    assert refusal(live, owner.instance_id, other.session) == 404
    assert other.session.get(f"{live.base}/instances/{owner.instance_id}/console").status_code == 404
    assert not console_operations(settings, owner.username, owner.name)


def test_a_cross_origin_socket_is_refused(live, owner, settings):
    assert refusal(live, owner.instance_id, owner.session, origin="http://evil.example") == 403
    assert refusal(live, owner.instance_id, owner.session,
                   origin=live.base.replace("127.0.0.1", "localhost")) == 403
    assert not console_operations(settings, owner.username, owner.name)


def test_a_socket_without_a_session_is_refused(live, owner):
    assert refusal(live, owner.instance_id) == 403


def test_an_admin_opens_any_members_console(live, owner, admin):
    page = admin.session.get(f"{live.base}/admin/users/{owner.username}").text
    assert f"/instances/{owner.instance_id}/console" in page
    socket = open_socket(live, owner.instance_id, admin.session)
    try:
        type_hostname(socket, owner.name)
    finally:
        socket.close()


def test_an_instance_console_opens_in_one_page_at_a_time(live, owner, admin, settings):
    socket = open_socket(live, owner.instance_id, owner.session)
    try:
        type_hostname(socket, owner.name)
        code, reason = closed_with(open_socket(live, owner.instance_id, admin.session))
        assert code == 4409 and "open in another page" in reason, (code, reason)
        type_hostname(socket, owner.name)  # the first one still works
    finally:
        socket.close()


def test_a_member_cannot_open_more_consoles_than_allowed(live, owner, settings):
    assert CONSOLES == 2  # one console on each of the owner's instances
    sockets = [open_socket(live, instance_id, owner.session)
               for instance_id in (owner.instance_id, owner.second_id)]
    try:
        for socket, name in zip(sockets, (owner.name, owner.second_name)):
            type_hostname(socket, name)
        code, reason = closed_with(open_socket(live, owner.instance_id, owner.session))
        assert code == 4409 and f"{CONSOLES} consoles open already" in reason, (code, reason)

        sockets.pop().close()  # a slot frees when its socket closes
        wait_until(lambda: not console_operations(settings, owner.username, owner.second_name),
                   timeout=15, message="the second console closed")
        sockets.append(open_socket(live, owner.second_id, owner.session))
        type_hostname(sockets[-1], owner.second_name)
    finally:
        for socket in sockets:
            socket.close()
    refused = [row for row in audit_rows(live, "instance.console") if row[2] == "refused"]
    assert (owner.username, owner.username) in [row[:2] for row in refused]


def test_pages_answer_while_consoles_are_open(live, owner):
    # The module's Warren has one gunicorn worker: with a worker that serves
    # one request at a time, these pages would wait for the consoles to close.
    sockets = [open_socket(live, instance_id, owner.session)
               for instance_id in (owner.instance_id, owner.second_id)]
    try:
        for socket, name in zip(sockets, (owner.name, owner.second_name)):
            type_hostname(socket, name)
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: owner.session.get(live.base + "/", timeout=5).status_code,
                                     range(16)))
        assert statuses == [200] * 16
    finally:
        for socket in sockets:
            socket.close()


def test_console_openings_are_audited(live, owner, admin, settings):
    for member in (owner, admin):
        socket = open_socket(live, owner.instance_id, member.session)
        type_hostname(socket, owner.name)
        socket.close()
        wait_until(lambda: not console_operations(settings, owner.username, owner.name),
                   timeout=15, message="the console closed")
    rows = [row[:3] for row in audit_rows(live, "instance.console")]
    assert (owner.username, owner.username, "ok") in rows
    assert (admin.username, owner.username, "ok") in rows


def test_a_stopped_instance_offers_no_console(live, other, busybox_image):
    instance_id = other.launch("quiet")
    page = other.session.get(f"{live.base}/instances/{instance_id}").text
    assert f"/instances/{instance_id}/console" in page  # offered while it runs

    other.session.submit(f"/instances/{instance_id}/stop")
    wait_until(lambda: f"/instances/{instance_id}/console" not in
               other.session.get(f"{live.base}/instances/{instance_id}").text,
               timeout=PROVISIONING, message="the console link gone after the stop")
    code, reason = closed_with(open_socket(live, instance_id, other.session))
    assert code == 4409 and "not running" in reason, (code, reason)


def test_the_console_page_allows_its_socket_and_no_inline_script(live, owner):
    response = owner.session.get(f"{live.base}/instances/{owner.instance_id}/console")
    policy = response.headers["Content-Security-Policy"]
    assert f"connect-src 'self' {live.base.replace('http://', 'ws://')}" in policy
    assert "default-src 'self'" in policy and "script-src" not in policy  # scripts: files only
    socket_url = live.base.replace("http://", "ws://") + f"/instances/{owner.instance_id}/console/socket"
    assert f'data-socket="{socket_url}"' in response.text
