"""The LXD client: one per thread and project, pylxd's errors translated
into Warren's at this boundary, and a short cache for what changes only
when an admin acts (images, drivers)."""
import threading
import time
from contextlib import contextmanager

import pylxd
import requests
from pylxd import exceptions as lxd_exceptions
from urllib3.util.retry import Retry

from ..errors import BackendUnavailable, Conflict, LxdError, NotFound


@contextmanager
def translated(action: str):
    """Run a block of pylxd calls, turning its errors into Warren's."""
    try:
        yield
    except lxd_exceptions.NotFound as error:
        raise NotFound(f"{action}: LXD says it does not exist ({error})") from error
    except lxd_exceptions.Conflict as error:
        raise Conflict(f"{action}: LXD reports a conflict ({error})") from error
    except lxd_exceptions.LXDAPIException as error:
        raise LxdError(f"{action}: LXD refused: {error}") from error
    except (lxd_exceptions.ClientConnectionFailed, requests.RequestException) as error:
        # RequestException: also a socket path that does not exist, which
        # pylxd takes for a URL without a scheme.
        raise BackendUnavailable(f"{action}: LXD is not reachable ({error})") from error


_clients = threading.local()


def connect(socket_path: str, project: str | None = None) -> pylxd.Client:
    """A client on the daemon's unix socket, optionally scoped to a project.

    Clients are kept per thread: making one costs a round trip to LXD."""
    cache = _clients.__dict__.setdefault("by_key", {})
    key = (socket_path, project)
    if key not in cache:
        cache[key] = _new_client(socket_path, project)
    return cache[key]


# A kept-alive connection the daemon closes just as a request goes out ends
# in "Remote end closed connection without response": try once more, on a
# new connection, when nothing can have happened twice (a failed connect, or
# an idempotent method; never a POST or PATCH that LXD may have acted on).
RETRY = Retry(total=1, connect=1, read=1, status=0, other=0, redirect=0)


def _new_client(socket_path: str, project: str | None) -> pylxd.Client:
    with translated("connecting to LXD"):
        try:
            client = pylxd.Client(endpoint=socket_path, project=project)
        except lxd_exceptions.ClientConnectionFailed as error:
            raise BackendUnavailable(
                f"LXD is not reachable on {socket_path}: is the daemon running? ({error})") from error
    # A unix socket has no proxy, netrc or CA bundle: without this, requests
    # reads them from the environment on every call (a fifth of a list's
    # LXD request in CPU).
    client.api.session.trust_env = False
    for adapter in client.api.session.adapters.values():
        adapter.max_retries = RETRY
    return client


def server_info(client: pylxd.Client) -> dict:
    """The server's environment: version, drivers, kernel features."""
    with translated("reading LXD server info"):
        return client.host_info


_image_cache: dict[tuple, tuple[float, object]] = {}


IMAGE_CACHE_SECONDS = 10.0


def cached(key: tuple, load):
    """A value from load(), reused for IMAGE_CACHE_SECONDS (image metadata
    changes only when an admin imports an image)."""
    hit = _image_cache.get(key)
    if hit and time.monotonic() - hit[0] < IMAGE_CACHE_SECONDS:
        return hit[1]
    value = load()
    _image_cache[key] = (time.monotonic(), value)
    return value


def forget_cached() -> None:
    """Drop every cached value (after an admin imported an image, in tests)."""
    _image_cache.clear()
