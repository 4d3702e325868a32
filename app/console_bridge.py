"""Carries a console between the browser's websocket and LXD's.

What goes over the browser's socket: the instance's output as binary
messages to the browser; keys as binary messages from it; and a text
message {"resize": [columns, rows]} when the terminal changes size. When a
console cannot be opened or LXD ends it, the socket closes with code
4000 + the HTTP status of the error (4409 for no free console slot, ...)
and the error's message as the reason, which the page shows.

Either side closing ends both, and the LXD side is closed in every case,
so LXD's console operation never outlives the page."""
import json
import logging
import threading

from simple_websocket import ConnectionClosed

from .errors import WarrenError, status_for

log = logging.getLogger(__name__)

ENDED = "The console has ended (the instance stopped, or LXD closed it)."
LARGEST = 1000  # columns or rows; a bigger terminal is refused


def serve(browser, opening) -> None:
    """Open the console (`opening`: a context manager giving an
    lxd.Console) and bridge it to the browser's socket until either ends."""
    try:
        with opening as console:
            output = threading.Thread(target=_copy_output, args=(console, browser),
                                      name="console-output", daemon=True)
            output.start()
            try:
                _copy_input(browser, console)
            finally:
                console.close()  # ends LXD's side, which also ends _copy_output's read
                output.join(timeout=10)
    except WarrenError as error:
        _close(browser, 4000 + status_for(error), str(error))
    except ConnectionClosed:
        raise  # the browser left: nothing to tell it
    except Exception:
        log.exception("console failed")
        _close(browser, 4500, "Something went wrong on our side; it has been logged.")


def parse_size(columns, rows) -> tuple[int, int]:
    """A terminal size from the browser, within 1..LARGEST (80x24 if absent or bad)."""
    try:
        size = int(columns), int(rows)
    except (TypeError, ValueError):
        return 80, 24
    if not all(1 <= value <= LARGEST for value in size):
        return 80, 24
    return size


def _copy_output(console, browser) -> None:
    while data := console.read():
        try:
            browser.send(data)
        except (ConnectionClosed, OSError):  # the browser left; _copy_input ends the console
            return
    _close(browser, 1000, ENDED)


def _copy_input(browser, console) -> None:
    """Until the browser closes its socket (simple_websocket then raises)."""
    while True:
        message = browser.receive()
        if isinstance(message, bytes):
            console.write(message)
        elif isinstance(message, str):
            size = _resize_request(message)
            if size:
                console.resize(*size)


def _resize_request(message: str) -> tuple[int, int] | None:
    try:
        columns, rows = json.loads(message)["resize"]
    except (ValueError, KeyError, TypeError):
        log.info("console: ignored a message that is not a resize request")
        return None
    return parse_size(columns, rows)


def _close(browser, code: int, reason: str) -> None:
    try:
        # a close frame's reason is at most 123 bytes
        browser.close(code, reason.encode()[:123].decode(errors="ignore"))
    except (ConnectionClosed, OSError):  # already closed by the other side
        pass
