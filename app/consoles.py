"""Instance consoles: whose console a user may open, from which pages, how
many one member may have open at once, and the audit entry of each
opening. LXD's side is lxd.open_console; console_bridge carries the bytes.
LXD attaches one client at a time to an instance's console, so a second
page is told the console is in use rather than seeing LXD's attach error.

An open console holds a web server thread for as long as its page is open,
so each member has WARREN_MEMBER_CONSOLES slots. A slot is an flock on a
small file: it is shared by every gunicorn worker, and the kernel frees it
when the console's thread lets go or its process dies, so no count can go
stale after a crash."""
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from . import audit, lxd
from .config import current_settings
from .errors import BackendError, Conflict, Forbidden, NotFound, QuotaExceeded
from .names import member_of
from .projects import installation
from .statuses import READY
from .store import get_db

ACTION = "instance.console"


def console_instance(user: dict, instance_id: int) -> dict:
    """The instance whose console the user may open: one of their own, or
    any for an admin; NotFound otherwise, as for the instance's page."""
    if user["role"] == "admin":
        rows = list(get_db()["instances"].rows_where("id = ?", [instance_id]))
    else:
        rows = list(get_db()["instances"].rows_where("id = ? AND user_id = ?",
                                                    [instance_id, user["id"]]))
    if not rows:
        raise NotFound("No such instance.")
    return rows[0]


def check_origin(origin: str | None, own_origin: str) -> None:
    """Refuse a console socket that a page of another site opened (a
    browser always sends Origin with a websocket; the session cookie
    alone would let any site drive a signed-in member's console)."""
    if origin != own_origin:
        raise Forbidden("A console opens only from Warren's own pages.")


def is_running(instance: dict) -> bool:
    """Whether the instance is ready and LXD runs it (its console answers)."""
    if instance["status"] != READY:
        return False
    found = lxd.get_instance(lxd.backend(current_settings()).client(instance["project"]),
                             instance["lxd_name"])
    return found is not None and found.status == "Running"


def offered(instance: dict) -> bool:
    """Whether pages offer the console: the instance runs. False when LXD
    does not answer, so the page itself still works."""
    try:
        return is_running(instance)
    except BackendError:
        return False


@contextmanager
def opened(user: dict, instance: dict, columns: int, rows: int):
    """The instance's console, open while the block runs and closed after
    it, in one of the user's console slots; the opening is audited."""
    settings = current_settings()
    with audit.audited(get_db(), user["username"], ACTION, instance["fqdn"],
                       member=member_of(instance["project"])):
        slot = _take_slot(user, settings)
        try:
            if not is_running(instance):
                raise Conflict(f"{instance['name']} is not running; start it to use its console.")
            backend = lxd.backend(settings)
            if lxd.console_operations(backend, instance["project"], instance["lxd_name"]):
                raise Conflict(f"The console of {instance['name']} is open in another page (LXD "
                               "gives it to one at a time); close that one first.")
            console = lxd.open_console(backend, instance["project"], instance["lxd_name"],
                                       columns, rows)
        except BaseException:
            os.close(slot)
            raise
    try:
        yield console
    finally:
        console.close()
        os.close(slot)  # releases the flock


def _take_slot(user: dict, settings) -> int:
    """A free console slot of the user's (an open, locked file), or QuotaExceeded."""
    folder = Path(settings.data_dir) / "consoles"
    folder.mkdir(mode=0o700, exist_ok=True)
    for number in range(settings.member_consoles):
        path = folder / f"{installation()}-{user['id']}-{number}.lock"
        handle = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue
        return handle
    raise QuotaExceeded(f"You have {settings.member_consoles} consoles open already, the most one "
                        "member may have at once; close one first.")
