"""The LXD client's retry of a request whose kept-alive connection the
daemon closed just as it went out. A stand-in daemon on a unix socket
plays that moment exactly (the real one does it rarely and at random);
only the client's own logic is under test here."""
import json
import socket
import threading

import pytest

from app.lxd import Backend

SERVER_INFO = {"type": "sync", "status": "Success", "status_code": 200, "metadata": {
    "api_extensions": [], "environment": {"server_version": "5.0.2"}, "auth": "trusted"}}


def _answer(conn: socket.socket, body: dict) -> None:
    data = json.dumps(body).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(data), data))


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        rest += conn.recv(65536)
    return head


@pytest.fixture
def daemon(tmp_path):
    """Answers the client's first request (server info), then closes that
    connection without answering the next one; later connections are
    answered. Records every request line it reads."""
    path = str(tmp_path / "unix.socket")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    seen, lock = [], threading.Lock()

    def handle(conn):
        with conn:
            while head := _read_request(conn):
                with lock:
                    seen.append(head.split(b"\r\n")[0].decode())
                    stale = len(seen) == 2
                if stale:
                    return  # the stale connection: closed without a response
                _answer(conn, SERVER_INFO if head.startswith(b"GET /1.0 ") else
                        {"type": "sync", "status": "Success", "status_code": 200, "metadata": []})

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield path, seen
    listener.close()


def test_an_idempotent_request_is_sent_again_on_a_new_connection(daemon):
    path, seen = daemon
    client = Backend(socket_path=path).client()
    assert client.api.instances.get().json()["metadata"] == []
    assert seen == ["GET /1.0 HTTP/1.1", "GET /1.0/instances HTTP/1.1", "GET /1.0/instances HTTP/1.1"]


def test_a_post_is_never_sent_twice(daemon):
    path, seen = daemon
    client = Backend(socket_path=path).client()
    with pytest.raises(Exception) as raised:
        client.api.instances.post(json={"name": "c1"})
    assert "Remote end closed connection" in str(raised.value)
    assert seen == ["GET /1.0 HTTP/1.1", "POST /1.0/instances HTTP/1.1"]


def test_an_https_backend_without_its_files_names_the_setting_to_fix(tmp_path):
    from app.config import load_settings
    from app.errors import ConfigError
    settings = load_settings({"lxd_url": "https://10.77.0.11:8443", "data_dir": str(tmp_path)},
                             environ={})
    with pytest.raises(ConfigError, match="WARREN_LXD_CERT: cannot read .*lxd-client.crt"):
        Backend.from_settings(settings)
