"""The API client: one method per operation the CLI uses. OPERATIONS lists
them (method, path template); Warren's tests check each against the pinned
OpenAPI document, so the client and the server cannot drift apart."""
import os
import time
from urllib.parse import quote

import requests

VERSION = "/api/v1"
OPERATIONS = {
    "me": ("GET", "/me"),
    "list_instances": ("GET", "/instances"),
    "create_instance": ("POST", "/instances"),
    "show_instance": ("GET", "/instances/{instance_id}"),
    "delete_instance": ("DELETE", "/instances/{instance_id}"),
    "progress": ("GET", "/instances/{instance_id}/progress"),
    "start": ("POST", "/instances/{instance_id}/start"),
    "stop": ("POST", "/instances/{instance_id}/stop"),
    "restart": ("POST", "/instances/{instance_id}/restart"),
    "renew": ("POST", "/instances/{instance_id}/renew"),
    "usage": ("GET", "/usage"),
    "list_keys": ("GET", "/keys"),
    "list_profiles": ("GET", "/profiles"),
    "list_tokens": ("GET", "/tokens"),
    "create_token": ("POST", "/tokens"),
    "revoke_token": ("DELETE", "/tokens/{token_id}"),
    "list_members": ("GET", "/admin/members"),
    "create_member": ("POST", "/admin/members"),
    "show_member": ("GET", "/admin/members/{username}"),
    "delete_member": ("DELETE", "/admin/members/{username}"),
    "set_share": ("PUT", "/admin/members/{username}/share"),
    "disable_member": ("POST", "/admin/members/{username}/disable"),
    "enable_member": ("POST", "/admin/members/{username}/enable"),
    "invite": ("POST", "/admin/invitations"),
    "list_snapshots": ("GET", "/instances/{instance_id}/snapshots"),
    "take_snapshot": ("POST", "/instances/{instance_id}/snapshots"),
    "show_snapshot": ("GET", "/instances/{instance_id}/snapshots/{snapshot}"),
    "delete_snapshot": ("DELETE", "/instances/{instance_id}/snapshots/{snapshot}"),
    "restore_snapshot": ("POST", "/instances/{instance_id}/snapshots/{snapshot}/restore"),
    "list_backups": ("GET", "/instances/{instance_id}/backups"),
    "back_up": ("POST", "/instances/{instance_id}/backups"),
    "restore_backup": ("POST", "/instances/{instance_id}/backups/{backup_id}/restore"),
    "list_forwards": ("GET", "/instances/{instance_id}/forwards"),
    "add_forward": ("POST", "/instances/{instance_id}/forwards"),
    "remove_forward": ("DELETE", "/instances/{instance_id}/forwards/{forward_id}"),
    "show_site": ("GET", "/instances/{instance_id}/site"),
    "publish_site": ("PUT", "/instances/{instance_id}/site"),
    "unpublish_site": ("DELETE", "/instances/{instance_id}/site"),
    "list_records": ("GET", "/records"),
    "add_record": ("POST", "/records"),
    "remove_record": ("DELETE", "/records/{record_id}"),
    "list_domains": ("GET", "/domains"),
    "add_domain": ("POST", "/domains"),
    "show_domain": ("GET", "/domains/{domain_id}"),
    "remove_domain": ("DELETE", "/domains/{domain_id}"),
    "check_domain": ("POST", "/domains/{domain_id}/check"),
    "move_domain": ("POST", "/domains/{domain_id}/move"),
}


class ApiError(Exception):
    """The API answered with an error (status, message, field errors)."""

    def __init__(self, status: int, message: str, fields: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields or {}


class Unreachable(Exception):
    """Warren could not be reached."""


class Client:
    def __init__(self, url: str, token: str, timeout: float = 30):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = os.environ.get("WARREN_CLI_PROXY") == "1"
        self.session.headers.update({"Authorization": f"Bearer {token}",
                                     "User-Agent": "warren-cli/1"})
        self.timeout = timeout

    def call(self, operation: str, *, json=None, params=None, headers=None, **path) -> dict | None:
        method, template = OPERATIONS[operation]
        path = {key: quote(str(value), safe="") for key, value in path.items()}  # a name is one segment
        try:
            response = self.session.request(method, self.url + VERSION + template.format(**path),
                                            json=json, params=params, headers=headers,
                                            timeout=self.timeout)
        except requests.RequestException as error:
            raise Unreachable(f"cannot reach Warren at {self.url}: {error}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text[:200] or response.reason}
            raise ApiError(response.status_code, body.get("error", response.reason), body.get("fields"))
        return response.json() if response.content else None

    def every(self, operation: str, **path) -> list[dict]:
        """Every item of a paginated list."""
        items, page = [], 1
        while True:
            answer = self.call(operation, params={"page": page, "per_page": 200}, **path)
            items += answer["items"]
            if not answer["next"]:
                return items
            page += 1

    def instance_by_name(self, name: str) -> dict:
        for row in self.every("list_instances"):
            if row["name"] == name:
                return row
        raise ApiError(404, f"You have no instance named {name}.")

    def poll(self, operation: str, until, on_answer=None, timeout: float = 600,
             **path) -> dict | None:
        """Ask again until until(answer) holds; None once the thing is gone (404)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self.call(operation, **path)
            except ApiError as error:
                if error.status == 404:
                    return None
                raise
            if on_answer:
                on_answer(answer)
            if until(answer):
                return answer
            if time.monotonic() > deadline:
                raise ApiError(504, f"still {answer.get('status') or answer.get('action')} "
                                    f"after {timeout:.0f} s")
            time.sleep(0.5)

    def wait(self, instance_id: int, until, on_progress=None, timeout: float = 600) -> dict | None:
        """Poll the progress until until(progress) holds (None once it is gone)."""
        return self.poll("progress", until, on_progress, timeout, instance_id=instance_id)
