"""HAProxy, the ingress proxy: its runtime API (the admin socket) and the
files it reads when it starts (route maps, the crt-list, certificates).

Every change is made in both places. In the running process through the
runtime API: a map is replaced whole and atomically (prepare map, add map
@version, commit map), a certificate is loaded or replaced with new/set/
commit ssl cert and listed with add ssl crt-list, so there is no reload and
no open connection is dropped. And in the files, each written atomically
(temporary file, fsync, rename) and owner-only, so a restart of the proxy
comes back with the same routes and certificates.

This module is the only one that speaks to HAProxy; it knows nothing of
sites or instances (app/ingress.py decides what the maps hold).
"""
import os
import re
import socket
import tempfile
from pathlib import Path

from .errors import BackendError, BackendUnavailable

TIMEOUT = 5
BATCH = 200  # map lines per payload: a payload must fit HAProxy's 16 kB buffer


class IngressError(BackendError):
    """HAProxy refused or failed a runtime command."""


def write_file(path: str | Path, text: str, mode: int = 0o600) -> bool:
    """Write a file atomically with `mode`; False when it held that text already."""
    path = Path(path)
    try:
        if path.read_text() == text and (path.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return True


def map_text(entries: dict[str, str]) -> str:
    """A map file: one `key value` a line, sorted."""
    return "".join(f"{key} {value}\n" for key, value in sorted(entries.items()))


def read_map(path: str | Path) -> dict[str, str]:
    """The entries of a map file (empty when it does not exist)."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split(None, 1) for line in lines if line.strip() and not line.startswith("#"))


class Runtime:
    """HAProxy's runtime API on its unix socket (admin level, owner-only)."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path

    def command(self, line: str, payload: str | None = None) -> str:
        """Send one command (with an optional multi-line payload); HAProxy's answer."""
        text = line if payload is None else f"{line} <<\n{payload.rstrip(chr(10))}\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.settimeout(TIMEOUT)
                connection.connect(self.socket_path)
                connection.sendall(text.encode() + b"\n")
                answer = b""
                while chunk := connection.recv(65536):
                    answer += chunk
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise BackendUnavailable(f"the ingress proxy is not running (its runtime socket "
                                     f"{self.socket_path}: {error.strerror})") from error
        except OSError as error:
            raise BackendUnavailable(f"the ingress proxy did not answer on {self.socket_path} "
                                     f"({error})") from error
        return answer.decode(errors="replace").strip()

    def _expect(self, line: str, success: str | None = None, payload: str | None = None) -> str:
        answer = self.command(line, payload)
        failed = answer and success is None or success is not None and success not in answer
        if failed or "Unknown command" in answer:
            raise IngressError(f"the ingress proxy refused {line.split(' <<')[0]!r}: "
                               f"{answer.splitlines()[0] if answer else '(no answer)'}")
        return answer

    # Maps -------------------------------------------------------------

    def show_map(self, path: str) -> dict[str, str]:
        """The entries of a loaded map."""
        answer = self.command(f"show map {path}")
        if answer.startswith("Unknown map"):
            raise IngressError(f"the ingress proxy has no map {path}: is its config current?")
        entries = {}
        for line in answer.splitlines():
            parts = line.split(None, 2)  # reference, key, value
            if len(parts) == 3:
                entries[parts[1]] = parts[2]
        return entries

    def replace_map(self, path: str, entries: dict[str, str]) -> None:
        """Swap a map's whole content at once: lookups see the old entries or
        the new ones, never a mix."""
        answer = self._expect(f"prepare map {path}", "New version created")
        version = re.search(r"([0-9]+)\s*$", answer).group(1)
        lines = [f"{key} {value}" for key, value in sorted(entries.items())]
        for start in range(0, len(lines), BATCH):
            self._expect(f"add map @{version} {path}", payload="\n".join(lines[start:start + BATCH]))
        self._expect(f"commit map @{version} {path}")

    def set_map_entry(self, path: str, key: str, value: str) -> None:
        """Add one entry to a map, or change it."""
        if key in self.show_map(path):
            self._expect(f"set map {path} {key} {value}")
        else:
            self._expect(f"add map {path} {key} {value}")

    def delete_map_entry(self, path: str, key: str) -> None:
        """Remove one entry from a map (nothing when it is absent)."""
        self.command(f"del map {path} {key}")

    # Certificates -----------------------------------------------------

    def crt_list(self, list_path: str) -> list[str]:
        """The certificate files a crt-list holds now."""
        answer = self.command(f"show ssl crt-list {list_path}")
        if "didn't find" in answer.lower() or "can't find" in answer.lower():
            raise IngressError(f"the ingress proxy has no crt-list {list_path}")
        return [line.split()[0] for line in answer.splitlines()
                if line.strip() and not line.startswith("#")]

    def certificate_serial(self, path: str) -> str | None:
        """The serial number of the certificate loaded from `path`, None if none is."""
        answer = self.command(f"show ssl cert {path}")
        found = re.search(r"^Serial:\s*([0-9A-Fa-f]+)", answer, re.MULTILINE)
        return found.group(1).upper() if found else None

    def loaded_certificates(self) -> set[str]:
        """Every certificate file the proxy holds in memory."""
        return {line.strip().lstrip("*").strip() for line in self.command("show ssl cert").splitlines()
                if line.strip() and not line.startswith("#")}

    def put_certificate(self, list_path: str, path: str, pem: str) -> None:
        """Serve a certificate (chain and key in one PEM) from now on: loaded
        anew or replaced in place; handshakes under way keep the old one."""
        fresh = path not in self.loaded_certificates()
        if fresh:
            self._expect(f"new ssl cert {path}", "New empty certificate store")
        self._expect(f"set ssl cert {path}", "Transaction", payload=pem)
        self._expect(f"commit ssl cert {path}", "Success")
        if path not in self.crt_list(list_path):
            self._expect(f"add ssl crt-list {list_path} {path}", "Success")

    def remove_certificate(self, list_path: str, path: str) -> None:
        """Stop serving a certificate and drop it from memory."""
        if path in self.crt_list(list_path):
            self._expect(f"del ssl crt-list {list_path} {path}", "deleted")
        if path in self.loaded_certificates():
            self._expect(f"del ssl cert {path}", "deleted")
