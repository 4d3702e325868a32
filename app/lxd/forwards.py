"""LXD network forwards: ports of a listen address (the co-op's public
address) that LXD's firewall driver sends on to instance addresses.

A forward belongs to the bridge, which lives in the default project, so
only Warren (never a member's restricted project) can change it. One
forward holds every port of one listen address; it is replaced whole,
with LXD's ETag, so a concurrent writer makes the write fail instead of
being overwritten."""
import pylxd

from ..errors import Conflict
from .client import translated


def port_entry(protocol: str, listen_port: int, target_address: str, target_port: int,
               description: str = "") -> dict:
    """One port of a forward, as LXD writes it back (ports as strings)."""
    return {"protocol": protocol, "listen_port": str(listen_port), "target_address": target_address,
            "target_port": str(target_port), "description": description}


def _node(client: pylxd.Client, network: str, listen_address: str):
    return client.api.networks[network].forwards[listen_address]


def forward_ports(client: pylxd.Client, network: str,
                  listen_address: str) -> tuple[list[dict], str | None] | None:
    """(ports, ETag) of the forward on listen_address, None when there is none."""
    with translated(f"reading the network forward {listen_address} of {network}"):
        try:
            response = _node(client, network, listen_address).get()
        except pylxd.exceptions.NotFound:
            return None
    return list(response.json()["metadata"].get("ports") or []), response.headers.get("ETag")


def forward_addresses(client: pylxd.Client, network: str, description: str) -> list[str]:
    """Listen addresses of the network's forwards that carry `description`."""
    with translated(f"listing the network forwards of {network}"):
        found = client.api.networks[network].forwards.get(params={"recursion": 1}).json()["metadata"]
    return [forward["listen_address"] for forward in found or []
            if forward.get("description") == description]


def set_forward_ports(client: pylxd.Client, network: str, listen_address: str,
                      ports: list[dict], etag: str | None, exists: bool, description: str) -> None:
    """Make the forward hold exactly `ports` (creating it when it does not
    exist). Conflict when someone changed it since `etag` was read."""
    action = f"setting the network forward {listen_address} of {network}"
    with translated(action):
        if not exists:
            client.api.networks[network].forwards.post(json={
                "listen_address": listen_address, "description": description,
                "config": {}, "ports": ports})
            return
        headers = {"If-Match": etag} if etag else {}
        try:
            _node(client, network, listen_address).put(
                json={"description": description, "config": {}, "ports": ports},
                headers=headers)
        except pylxd.exceptions.LXDAPIException as error:
            if error.response.status_code == 412:
                raise Conflict(f"{action}: it changed meanwhile") from error
            raise


def delete_forward(client: pylxd.Client, network: str, listen_address: str) -> bool:
    """Remove the forward of listen_address; False when there was none."""
    with translated(f"deleting the network forward {listen_address} of {network}"):
        try:
            _node(client, network, listen_address).delete()
        except pylxd.exceptions.NotFound:
            return False
    return True

