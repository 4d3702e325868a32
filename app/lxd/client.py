"""pylxd's errors translated into Warren's at this boundary, and a short
cache for what changes only when an admin acts (images, drivers). The
clients themselves come from the backend (backend.py)."""
import time
from contextlib import contextmanager

import pylxd
import requests
from pylxd import exceptions as lxd_exceptions

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
