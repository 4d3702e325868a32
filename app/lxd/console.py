"""Instance consoles as LXD hands them out: a container's /dev/console or a
VM's serial console, as an operation with two websockets on the daemon
(its unix socket, or the cluster's HTTPS address), one carrying the
terminal's bytes and one control messages (the window size).

LXD 5.0 waits for both sockets without a time limit and refuses to cancel
a console operation, so once one is created both are connected at once.

Ending one takes care: LXD 5.0.2 panics ("concurrent write to websocket
connection", lxd/instance_console.go) when the control socket goes first
while the instance is still writing, since it then writes to the data
socket from two goroutines, and the panic takes the whole daemon down. So
close() ends the data socket first (LXD then closes the console, its
mirror stops writing, and it closes the control socket itself), waits for
that, and only then closes the control socket. LXD notices the closed
data socket at once but ends the operation only at the instance's next
output; after CLOSE_SECONDS of silence the control socket closes anyway:
by then LXD has closed the console, so its reset sequence cannot make the
instance echo into that race.
websocket-client is imported here and nowhere else."""
import json
import socket
from urllib.parse import urlsplit

import websocket

from ..errors import BackendUnavailable, LxdError
from .client import translated

DESCRIPTION = "Showing console"  # how LXD names a console operation
CONNECT_SECONDS = 10
CLOSE_SECONDS = 2  # how long close() waits for LXD to end the operation


class Console:
    """An open console: read() what the instance writes, write() keys,
    resize() the terminal, close() to end LXD's operation."""

    def __init__(self, operation: str, data: websocket.WebSocket, control: websocket.WebSocket):
        self.operation = operation
        self._data = data
        self._control = control
        self._closed = False

    def read(self) -> bytes:
        """The next output from the instance; b"" once the console has ended."""
        while True:
            try:
                opcode, payload = self._data.recv_data()
            except (websocket.WebSocketException, OSError):
                return b""
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return b""
            if payload:
                return payload

    def write(self, data: bytes) -> None:
        """Send keys (or pasted text) to the instance's console."""
        try:
            self._data.send_binary(data)
        except (websocket.WebSocketException, OSError) as error:
            raise LxdError(f"the console of operation {self.operation} is closed ({error})") from error

    def resize(self, columns: int, rows: int) -> None:
        """Tell LXD the terminal's new size (it sets the console's window size)."""
        message = {"command": "window-resize", "args": {"width": str(columns), "height": str(rows)}}
        try:
            self._control.send(json.dumps(message))
        except (websocket.WebSocketException, OSError) as error:
            raise LxdError(f"the console of operation {self.operation} is closed ({error})") from error

    def close(self) -> None:
        """End LXD's operation (idempotent; safe while another thread reads):
        the data socket first, then, once LXD has ended the operation (or
        after CLOSE_SECONDS), the control socket."""
        if self._closed:
            return
        self._closed = True
        _hang_up(self._data)
        _wait_closed(self._control, CLOSE_SECONDS)
        _hang_up(self._control)


def _hang_up(sock: websocket.WebSocket) -> None:
    if sock.sock is not None:
        try:
            # shut down first: that wakes a read blocked in another thread, a close does not
            sock.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    sock.shutdown()


def _wait_closed(sock: websocket.WebSocket, seconds: float) -> None:
    """Read (and drop) what arrives until the peer closes `sock` or time runs out."""
    if sock.sock is None:
        return
    try:
        sock.settimeout(seconds)
        while True:
            opcode, _ = sock.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return
    except (websocket.WebSocketException, OSError):
        return  # closed, or LXD took too long: the caller closes it anyway


def _websocket(backend, path: str) -> websocket.WebSocket:
    if backend.url:
        address = urlsplit(backend.url).netloc
        connection = websocket.create_connection(
            f"wss://{address}{path}", sslopt={"context": backend.ssl_context()},
            suppress_origin=True, timeout=CONNECT_SECONDS)
    else:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(CONNECT_SECONDS)
        try:
            raw.connect(backend.socket_path)
            # No Origin header: LXD (gorilla/websocket) compares it with the
            # Host header, which is meaningless on a unix socket.
            connection = websocket.create_connection(f"ws://lxd{path}", socket=raw,
                                                     suppress_origin=True, timeout=CONNECT_SECONDS)
        except BaseException:
            raw.close()
            raise
    connection.settimeout(None)  # reads wait for the instance as long as the console is open
    return connection


def open_console(backend, project: str, name: str, columns: int, rows: int) -> Console:
    """Open an instance's console at the given terminal size."""
    client = backend.client(project)
    with translated(f"opening the console of {name}"):
        response = client.api.instances[name].console.post(
            json={"type": "console", "width": columns, "height": rows})
    body = response.json()
    operation = body["operation"].split("/")[-1].split("?")[0]
    secrets = body["metadata"]["metadata"]["fds"]
    path = f"/1.0/operations/{operation}/websocket?secret="
    opened = []
    try:
        for key in ("control", "0"):
            opened.append(_websocket(backend, path + secrets[key]))
    except (websocket.WebSocketException, OSError) as error:
        for connection in opened:
            connection.shutdown()
        raise BackendUnavailable(f"opening the console of {name}: LXD's console socket "
                                 f"did not answer ({error})") from error
    control, data = opened
    return Console(operation, data, control)


def console_operations(backend, project: str, name: str) -> list[str]:
    """Ids of the console operations LXD is running for an instance."""
    client = backend.client(project)
    with translated(f"listing the operations of {name}"):
        listing = client.api.operations.get(params={"recursion": 1}).json()["metadata"] or {}
    wanted = f"/1.0/instances/{name}"
    return [operation["id"] for operation in listing.get("running", [])
            if operation["description"] == DESCRIPTION
            and wanted in (url.split("?")[0] for url in
                           (operation.get("resources") or {}).get("instances", []))]
