"""Projects and the profiles inside them."""
from concurrent.futures import ThreadPoolExecutor

import pylxd
from pylxd import exceptions as lxd_exceptions

from ..errors import Conflict
from .client import translated
from .instances import delete_instance, instance_states

DELETE_THREADS = 4


def project_exists(client: pylxd.Client, name: str) -> bool:
    """Whether a project exists."""
    with translated(f"project {name}"):
        return client.projects.exists(name)


def ensure_project(client: pylxd.Client, name: str, config: dict, description: str,
                   absent: tuple = ()) -> bool:
    """Create a project, or bring the given keys back in line and remove the
    `absent` ones; True when changed."""
    with translated(f"project {name}"):
        if not client.projects.exists(name):
            try:
                client.projects.create(name, config=config, description=description)
                return True
            except lxd_exceptions.LXDAPIException as error:
                if "already exists" not in str(error):
                    raise  # otherwise someone else made it meanwhile: bring it in line
        project = client.projects.get(name)
        if all(project.config.get(key) == value for key, value in config.items()) \
                and not any(key in project.config for key in absent):
            return False
        project.config.update(config)
        for key in absent:
            project.config.pop(key, None)
        project.save(wait=True)
        return True


def ensure_profile(client: pylxd.Client, name: str, config: dict, devices: dict,
                   description: str) -> bool:
    """Create a profile in the client's project, or make it exactly this; LXD
    applies a changed profile to running instances live. True when changed."""
    with translated(f"profile {name}"):
        if not client.profiles.exists(name):
            try:
                client.profiles.create(name, config=config, devices=devices, description=description)
                return True
            except lxd_exceptions.LXDAPIException as error:
                if "already exists" not in str(error):
                    raise  # otherwise someone else made it meanwhile: bring it in line
        profile = client.profiles.get(name)
        if profile.config == config and profile.devices == devices \
                and profile.description == description:
            return False
        profile.config, profile.devices, profile.description = config, devices, description
        profile.save(wait=True)
        return True


def profile_names(client: pylxd.Client) -> list[str]:
    """The profiles of the client's project."""
    with translated("listing profiles"):
        return [profile["name"] for profile in
                client.api.profiles.get(params={"recursion": 1}).json()["metadata"]]


def delete_profile(client: pylxd.Client, name: str) -> None:
    """Delete a profile; Conflict naming the instances when it is in use."""
    with translated(f"profile {name}"):
        profile = client.profiles.get(name)
        users = [path.rsplit("/", 1)[-1].split("?")[0] for path in profile.used_by]
        if users:
            raise Conflict(f"profile {name} is used by {', '.join(sorted(users))}")
        profile.delete()


def delete_project(backend, name: str) -> bool:
    """Delete a project with its instances and profiles; False if absent."""
    client = backend.client()
    with translated(f"deleting project {name}"):
        if not client.projects.exists(name):
            return False
    scoped = backend.client(name)
    with translated(f"deleting project {name}"):
        # A few at a time (a client each): LXD deletes instances in parallel
        # well, and a member with dozens of them goes in seconds.
        with ThreadPoolExecutor(max_workers=DELETE_THREADS) as pool:
            list(pool.map(lambda instance_name: delete_instance(
                backend.client(name), instance_name), instance_states(scoped)))
        for profile in scoped.profiles.all():
            if profile.name != "default":
                profile.delete()
        client.projects.get(name).delete()
    return True


def project_names(client: pylxd.Client, prefix: str, installation: str) -> list[str]:
    """Names of the projects that start with prefix and carry this
    user.warren.installation.

    One request with their configs (recursion=1): reading each project's
    config after listing the names would fail on a project deleted in
    between (a member removed while the pass runs)."""
    with translated("listing projects"):
        listed = client.api.projects.get(params={"recursion": 1}).json()["metadata"]
        return [project["name"] for project in listed
                if project["name"].startswith(prefix)
                and (project.get("config") or {}).get("user.warren.installation") == installation]
