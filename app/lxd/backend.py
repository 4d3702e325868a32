"""Where Warren's LXD is and how to reach it: one object, built from the
settings, that hands out clients.

A single daemon is reached on its unix socket (lxd_socket). A cluster, or a
daemon on another machine, is reached over HTTPS (lxd_url) with Warren's
client certificate (lxd_cert, lxd_key; trusted by the cluster) and the
cluster's certificate pinned (lxd_server_cert): the connection is accepted
only from the holder of that certificate, whatever CA bundle the
environment names. `trust_env=False` matters for that: requests otherwise
lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace the session's `verify`.

The backend also knows whether LXD is clustered, and its members.
"""
import hashlib
import os
import ssl
import threading
from dataclasses import dataclass, field

import pylxd
from pylxd import exceptions as lxd_exceptions
from pylxd.client import get_session_for_url
from urllib3.util.retry import Retry

from ..errors import BackendUnavailable, ConfigError
from .client import cached, translated

# A kept-alive connection the daemon closes just as a request goes out ends
# in "Remote end closed connection without response": try once more, on a
# new connection, when nothing can have happened twice (a failed connect, or
# an idempotent method; never a POST or PATCH that LXD may have acted on).
RETRY = Retry(total=1, connect=1, read=1, status=0, other=0, redirect=0)


@dataclass(frozen=True)
class Member:
    """One cluster member as LXD reports it."""
    name: str
    url: str
    status: str  # Online, Evacuated, Offline, ...
    message: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    architecture: str = ""
    failure_domain: str = ""


@dataclass(frozen=True)
class Backend:
    """How to reach LXD: a unix socket, or an HTTPS URL with certificates."""
    socket_path: str = "/var/lib/lxd/unix.socket"
    url: str = ""
    cert: str = ""  # Warren's client certificate (HTTPS)
    key: str = ""
    server_cert: str = ""  # the cluster's certificate, pinned (HTTPS)
    _clients: threading.local = field(default_factory=threading.local, compare=False,
                                      repr=False, hash=False)

    @classmethod
    def from_settings(cls, settings) -> "Backend":
        """The backend the settings name; the HTTPS files must be readable."""
        if settings.lxd_url:
            for name in ("lxd_cert", "lxd_key", "lxd_server_cert"):
                path = settings[name]
                if not os.access(path, os.R_OK):
                    raise ConfigError(f"WARREN_{name.upper()}: cannot read {path} (needed because "
                                      f"WARREN_LXD_URL is set)")
        return cls(socket_path=settings.lxd_socket, url=settings.lxd_url, cert=settings.lxd_cert,
                   key=settings.lxd_key, server_cert=settings.lxd_server_cert)

    @property
    def endpoint(self) -> str:
        """The URL or socket path, for messages and cache keys."""
        return self.url or self.socket_path

    def client(self, project: str | None = None) -> pylxd.Client:
        """A client, optionally scoped to a project. Kept per thread:
        making one costs a round trip to LXD."""
        cache = self._clients.__dict__.setdefault("by_project", {})
        if project not in cache:
            cache[project] = self._new_client(project)
        return cache[project]

    def _new_client(self, project: str | None) -> pylxd.Client:
        with translated("connecting to LXD"):
            try:
                if self.url:
                    session = get_session_for_url(self.url, verify=self.server_cert,
                                                  cert=(self.cert, self.key))
                    session.trust_env = False  # before the first request: see the docstring
                    client = pylxd.Client(endpoint=self.url, cert=(self.cert, self.key),
                                          verify=self.server_cert, project=project,
                                          session=session)
                else:
                    client = pylxd.Client(endpoint=self.socket_path, project=project)
            except lxd_exceptions.ClientConnectionFailed as error:
                raise BackendUnavailable(f"LXD is not reachable on {self.endpoint}: is the "
                                         f"daemon running? ({error})") from error
        # A unix socket has no proxy, netrc or CA bundle: without this,
        # requests reads them from the environment on every call.
        client.api.session.trust_env = False
        for adapter in client.api.session.adapters.values():
            adapter.max_retries = RETRY
        return client

    def clustered(self) -> bool:
        """Whether LXD is a cluster (server_clustered in its server info)."""
        with translated("reading LXD server info"):
            return bool(self.client().api.get().json()["metadata"]["environment"]
                        .get("server_clustered"))

    def members(self) -> list[Member]:
        """The cluster's members ([] on a single daemon)."""
        if not self.clustered():
            return []
        with translated("listing the cluster's members"):
            listing = self.client().api.cluster.members.get(
                params={"recursion": 1}).json()["metadata"] or []
        return [Member(name=item["server_name"], url=item.get("url", ""),
                       status=item.get("status", ""), message=item.get("message", ""),
                       groups=tuple(item.get("groups") or ()), roles=tuple(item.get("roles") or ()),
                       architecture=item.get("architecture", ""),
                       failure_domain=item.get("failure_domain", ""))
                for item in listing]

    def members_now(self, cached_ok: bool = False) -> list[Member]:
        """members(), or with cached_ok LXD's list of a few seconds ago
        (IMAGE_CACHE_SECONDS): enough for a member's address, or for
        whether it is offline before a job is tried."""
        return cached(("members", self.endpoint), self.members) if cached_ok else self.members()

    def groups(self) -> dict[str, list[str]]:
        """The cluster's groups and their members ({} on a single daemon)."""
        if not self.clustered():
            return {}
        with translated("listing the cluster's groups"):
            listing = self.client().api.cluster.groups.get(
                params={"recursion": 1}).json()["metadata"] or []
        return {item["name"]: list(item.get("members") or []) for item in listing}

    def daemon_id(self) -> str:
        """A short stable name of the daemon or cluster this backend reaches
        (for host-wide locks that are per daemon)."""
        where = self.url or os.path.realpath(self.socket_path)
        return hashlib.sha256(where.encode()).hexdigest()[:12]

    def ssl_context(self) -> ssl.SSLContext:
        """TLS to the cluster: Warren's client certificate, and only the
        pinned cluster certificate accepted (for a console's websockets)."""
        context = ssl.create_default_context(cafile=self.server_cert)
        context.check_hostname = False  # the certificate itself is pinned, not a name
        context.load_cert_chain(self.cert, self.key)
        return context


_backends: dict[tuple, Backend] = {}
_lock = threading.Lock()


def backend(settings) -> Backend:
    """The backend of these settings (one per distinct LXD address, so its
    per-thread clients are reused)."""
    key = (settings.lxd_socket, settings.lxd_url, settings.lxd_cert, settings.lxd_key,
           settings.lxd_server_cert)
    with _lock:
        if key not in _backends:
            _backends[key] = Backend.from_settings(settings)
        return _backends[key]
