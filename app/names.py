"""How Warren names what it makes: member projects, LXD instances, DNS names
and the owner marker in DNS. A leaf module: it imports nothing of Warren's,
so every other module can use it.

The LXD name must be unique on the whole host, across every project and
every Warren sharing the daemon: LXD 5.0 hands out isolated id maps skipping
other containers by name alone, and cgroups are named after instances. It is
built from the row id and the installation id, which are unique by
themselves, so no two rows can ever share one (the readable part in front
only helps people reading `lxc list`).
"""

import re

PROJECT_PREFIX = "warren-"
LXD_NAME_MAX = 63  # LXD's limit on instance names (a hostname label)


def project_name(username: str) -> str:
    """The member's LXD project."""
    return PROJECT_PREFIX + username


def member_of(project: str) -> str:
    """The member a project belongs to (the inverse of project_name)."""
    return project.removeprefix(PROJECT_PREFIX)


def fqdn_for(name: str, username: str, zone: str) -> str:
    """An instance's DNS name: <name>.<member>.<zone>."""
    return f"{name}.{username}.{zone}"


def lxd_name(name: str, row_id: int, installation: str) -> str:
    """The LXD instance name of a row: <name>-<row id>-<installation id>,
    the readable part shortened to fit LXD's 63 characters."""
    suffix = f"-{row_id}-{installation}"
    return name[:LXD_NAME_MAX - len(suffix)].rstrip("-") + suffix


def dns_owner(username: str, installation: str) -> str:
    """The owner written in an instance's TXT marker: member@installation."""
    return f"{username}@{installation}"


# User names that are not anyone's to take: Warren's own actors in the audit
# log, labels Warren's zone uses, and names people read as the system or
# its operators.
RESERVED_USERNAMES = {
    "warren": "Warren's own actor in the audit log",
    "cli": "the actor of command-line changes in the audit log",
    "admin": "it reads as the co-op's administrators", "administrator": "it reads as the co-op's administrators",
    "root": "it reads as the system", "system": "it reads as the system",
    "hostmaster": "a role address", "postmaster": "a role address", "webmaster": "a role address",
    "abuse": "a role address", "security": "a role address",
    "www": "a label the zone may use", "mail": "a label the zone may use",
    "localhost": "a name every resolver treats specially",
}
NAME_SERVER_LABEL = re.compile(r"ns[0-9]{0,2}")  # ns, ns1, ns2, ...: the zone's name servers


def reserved_username(username: str) -> str | None:
    """Why a user name is reserved, or None when anyone may take it."""
    if NAME_SERVER_LABEL.fullmatch(username):
        return "a name server label of the zone"
    return RESERVED_USERNAMES.get(username)
