"""Profiles: the YAML files in profiles/, parsed in one place into typed
objects. Every problem is reported with the file, the field and the reason.

Only allow-listed LXD config keys pass; dangerous ones are refused with a
reason even when an admin wrote them. Warren adds the root disk and the NIC
itself, so a profile declares no devices.
"""
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import safe_yaml
from .errors import ValidationError
from .units import UNITS, format_size, parse_size, shown

# Patterns are used with fullmatch: `$` would let a trailing newline through.
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
# A share of one CPU (1-100%) or a hard cap: quota/period, the period at most 1 s.
CPU_ALLOWANCE = re.compile(r"([1-9][0-9]?|100)%|[1-9][0-9]{0,5}ms/([1-9][0-9]{0,2}|1000)ms")
MAX_CONFIG_TEXT = 100  # characters of a free-text config value (snapshots.*)
MAX_SIZE = UNITS["PiB"]
INSTANCE_TYPES = ("container", "virtual-machine")
# LXD keys a profile may set besides the limits Warren derives from `limits`.
ALLOWED_CONFIG = {
    "security.nesting": ("true", "false"),
    "boot.autostart": ("true", "false"),
    "snapshots.schedule": None,
    "snapshots.schedule.stopped": ("true", "false"),
    "snapshots.expiry": None,
    "snapshots.pattern": None,
    "limits.memory.swap": ("true", "false"),
    "limits.memory.enforce": ("hard", "soft"),
}
# LXD's schedule aliases; otherwise five cron fields (LXD 5.0.2's IsCron).
SCHEDULE_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@annually",
                    "@yearly", "@startup", "@never")
CRON_FIELD = re.compile(r"[0-9a-z*?/,-]+")
# LXD's expiry: amounts with a unit, space separated, each unit once
# (S seconds, M minutes, H hours, d days, w weeks, m months, y years).
EXPIRY_PART = re.compile(r"([0-9]{1,6})([SMHdwmy])")
# What a scheduled snapshot's name may be made of: name characters, LXD's
# %d counter, and pongo2's {{ creation_date|date:"..." }} (quotes, colon,
# pipe, braces, space inside the braces).
PATTERN = re.compile(r"[A-Za-z0-9._%-]*(\{\{[ A-Za-z0-9_.|:'\"%-]+\}\}[A-Za-z0-9._%-]*)*")
DANGEROUS = (
    ("security.privileged", "a privileged container's root is the host's root"),
    ("security.idmap.", "Warren gives every instance its own isolated id map"),
    ("raw.", "raw settings bypass every LXD restriction"),
    ("security.syscalls.intercept.", "syscall interception lets a container act on the host"),
    ("linux.kernel_modules", "loading kernel modules changes the host kernel"),
    ("security.protection.", "protection flags are Warren's to manage"),
    ("limits.", "limits come from the profile's `limits` section"),
    ("user.warren.", "user.warren.* keys are Warren's own bookkeeping"),
    ("volatile.", "volatile keys belong to LXD"),
)
# Keys LXD accepts on containers only (a VM profile may not set them).
CONTAINER_ONLY = {"security.nesting", "limits.memory.swap", "limits.memory.enforce"}
VM_UNUSED_LIMITS = ("processes", "cpu_allowance", "cpu_priority")
FIELDS = {"description", "instance_type", "limits", "images", "config", "devices", "lease_hours",
          "lease_renewals", "lease_grace_hours", "approval", "placement"}
PLACEMENT = re.compile(r"@[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
LIMIT_FIELDS = {"cpu", "memory", "disk", "processes", "cpu_allowance", "cpu_priority"}


@dataclass(frozen=True)
class Limits:
    cpu: int
    memory: int  # bytes
    disk: int  # bytes
    processes: int
    cpu_allowance: str
    cpu_priority: int


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    instance_type: str
    limits: Limits
    images: tuple[str, ...]
    config: dict = field(default_factory=dict)
    lease_hours: int | None = None
    approval: bool = False
    lease_renewals: int = 0  # how often a member may renew a lease
    lease_grace_hours: int = 24  # stopped after expiry, deleted this much later
    placement: str | None = None  # "@group": only the LXD cluster members of that group

    @property
    def nesting(self) -> bool:
        return self.config.get("security.nesting") == "true"

    @property
    def is_vm(self) -> bool:
        return self.instance_type == "virtual-machine"

    def lxd_config(self) -> dict:
        """The LXD profile config: limits plus the allow-listed keys.

        A VM's limits.cpu is set on the instance instead, so that a profile
        change never reaches a running VM's CPUs (LXD would hot-plug them);
        Warren applies it when the VM next starts."""
        if self.is_vm:
            return {"limits.memory": format_size(self.limits.memory), **self.config}
        return {
            "limits.cpu": str(self.limits.cpu),
            "limits.memory": format_size(self.limits.memory),
            "limits.processes": str(self.limits.processes),
            "limits.cpu.allowance": self.limits.cpu_allowance,
            "limits.cpu.priority": str(self.limits.cpu_priority),
            **self.config,
        }

    def lxd_devices(self, pool: str, network: str) -> dict:
        """Root disk with the profile's size, one NIC on Warren's bridge."""
        return {
            "root": {"type": "disk", "path": "/", "pool": pool, "size": format_size(self.limits.disk)},
            "eth0": {"type": "nic", "network": network, "name": "eth0"},
        }


def canonical_config(key: str, value) -> str | None:
    """The one way LXD gets an allowed key's value (TRUE, True and true
    are all `true`; HARD is `hard`), or None when the value is not valid."""
    choices = ALLOWED_CONFIG[key]
    if choices:
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = value.lower() if isinstance(value, str) else None
        return text if text in choices else None
    if isinstance(value, str) and 0 < len(value) <= MAX_CONFIG_TEXT and value.isprintable():
        return value
    return None


def _schedule_problem(value: str) -> str | None:
    for trigger in value.lower().split(", "):
        if trigger in SCHEDULE_ALIASES:
            continue
        fields = trigger.split(" ")
        if len(fields) != 5 or not all(CRON_FIELD.fullmatch(part) for part in fields):
            return ("snapshots.schedule must be five cron fields (minute hour day-of-month month "
                    f"day-of-week, like '0 3 * * *') or one of {', '.join(SCHEDULE_ALIASES)}; "
                    "several are separated by ', '")
    return None


def _expiry_problem(value: str) -> str | None:
    units = [EXPIRY_PART.fullmatch(part) for part in value.split(" ")]
    if not all(units) or len({match[2] for match in units}) != len(units):
        return ("snapshots.expiry must be amounts with a unit, each unit once, like '2w' or "
                "'1d 12H' (S seconds, M minutes, H hours, d days, w weeks, m months, y years)")
    return None


def _pattern_problem(value: str) -> str | None:
    if not PATTERN.fullmatch(value) or ("%d" not in value and "{{" not in value):
        return ("snapshots.pattern must name snapshots with letters, digits, '.', '-', '_' and "
                "contain %d (a counter) or a {{ creation_date|date:\"...\" }} template, like "
                "'auto-%d'")
    return None


# Keys whose free text LXD reads as a schedule, a duration or a name template.
TEXT_CHECKS = {"snapshots.schedule": _schedule_problem, "snapshots.expiry": _expiry_problem,
               "snapshots.pattern": _pattern_problem}


def config_problem(key, value) -> str | None:
    """Why an LXD config key may not appear in a profile (None when it may)."""
    name = shown(key)
    if key not in ALLOWED_CONFIG:  # allowed keys pass, though limits.memory.* starts as limits.* do
        for prefix, reason in DANGEROUS:
            if isinstance(key, str) and (key == prefix or key.startswith(prefix)):
                return f"{name} is not allowed: {reason}"
        return f"{name} is not on Warren's allow-list ({', '.join(sorted(ALLOWED_CONFIG))})"
    if canonical_config(key, value) is None:
        choices = ALLOWED_CONFIG[key]
        if choices:
            return f"{key} must be one of {', '.join(choices)}"
        return f"{key} must be one line of text of at most {MAX_CONFIG_TEXT} characters"
    return TEXT_CHECKS[key](value) if key in TEXT_CHECKS else None


def _limits(raw, errors: dict, vm: bool = False) -> Limits | None:
    if not isinstance(raw, dict):
        errors["limits"] = ["must be a mapping with " + ", ".join(sorted(LIMIT_FIELDS))]
        return None
    for unknown in sorted(set(raw) - LIMIT_FIELDS, key=shown):
        errors.setdefault(f"limits.{shown(unknown)}", []).append("is not a known limit")
    if vm:  # LXD has no such limits for VMs: the guest kernel schedules its own processes
        for name in VM_UNUSED_LIMITS:
            if name in raw:
                errors.setdefault(f"limits.{name}", []).append(
                    "applies to containers only; leave it out of a virtual-machine profile")
        raw = {**raw, "processes": 10, "cpu_allowance": "100%", "cpu_priority": 0}
    values = {}

    def whole(name, low, high):
        value = raw.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors.setdefault(f"limits.{name}", []).append(f"must be a whole number from {low} to {high}")
        values[name] = value

    def size(name, low):
        try:
            values[name] = parse_size(raw.get(name))
            if not low <= values[name] <= MAX_SIZE:
                errors.setdefault(f"limits.{name}", []).append(
                    f"must be from {format_size(low)} to {format_size(MAX_SIZE)}")
        except ValueError as error:
            errors.setdefault(f"limits.{name}", []).append(str(error))

    whole("cpu", 1, 64)
    size("memory", 32 * 1024 ** 2)
    size("disk", 64 * 1024 ** 2)
    whole("processes", 10, 1_000_000)
    whole("cpu_priority", 0, 10)
    allowance = raw.get("cpu_allowance", "100%")
    if not isinstance(allowance, str) or not CPU_ALLOWANCE.fullmatch(allowance):
        errors.setdefault("limits.cpu_allowance", []).append(
            "must be a percentage like 50% or a time slice like 20ms/100ms "
            "(the period at most 1000ms)")
    values["cpu_allowance"] = allowance
    if any(key.startswith("limits") for key in errors):
        return None
    if vm:
        values["processes"] = 0  # counts nothing against the processes quota
    return Limits(**values)


def parse_profile(name: str, text: str, source: str) -> Profile:
    """One profile from YAML text; ValidationError names source, field, reason."""
    errors: dict[str, list[str]] = {}
    if not NAME.fullmatch(name):
        errors["name"] = ["use 2 to 32 lower-case letters, digits or hyphens, starting with a letter"]
    raw = safe_yaml.load(text, source)
    if not isinstance(raw, dict):
        raise ValidationError({f"{source}": ["must be a YAML mapping of profile fields"]})
    for unknown in sorted(set(raw) - FIELDS, key=shown):
        errors.setdefault(shown(unknown), []).append(
            f"is not a profile field (known: {', '.join(sorted(FIELDS))})")
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        errors["description"] = ["is required: one line saying what the profile is for"]
    instance_type = raw.get("instance_type", "container")
    if instance_type not in INSTANCE_TYPES:
        errors["instance_type"] = [f"must be one of {', '.join(INSTANCE_TYPES)}"]
    limits = _limits(raw.get("limits"), errors, vm=instance_type == "virtual-machine")
    images = raw.get("images")
    if not isinstance(images, list) or not images or not all(isinstance(i, str) and i for i in images):
        errors["images"] = ["must be a non-empty list of image aliases"]
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        errors["config"] = ["must be a mapping of LXD config keys to values"]
        config = {}
    for key, value in config.items():
        problem = config_problem(key, value)
        if problem is None and instance_type == "virtual-machine" and key in CONTAINER_ONLY:
            problem = f"{key} applies to containers only"
        if problem:
            errors.setdefault(f"config.{shown(key)}", []).append(problem)
    devices = raw.get("devices") or {}
    if devices:
        errors["devices"] = ["a profile may not declare devices: Warren adds the root disk (size "
                             "from limits.disk) and the NIC on its bridge itself"]
    lease = raw.get("lease_hours")
    if lease is not None and (isinstance(lease, bool) or not isinstance(lease, int)
                              or not 1 <= lease <= 24 * 365):
        errors["lease_hours"] = ["must be a whole number of hours from 1 to 8760, or absent"]
    renewals, grace = raw.get("lease_renewals", 0), raw.get("lease_grace_hours", 24)
    for key, value, high in (("lease_renewals", renewals, 100), ("lease_grace_hours", grace, 24 * 90)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            errors[key] = [f"must be a whole number from 0 to {high}"]
    approval = raw.get("approval", False)
    if not isinstance(approval, bool):
        errors["approval"] = ["must be true or false"]
    placement = raw.get("placement")
    if placement is not None and not (isinstance(placement, str) and PLACEMENT.fullmatch(placement)):
        errors["placement"] = ["must be @ and the name of an LXD cluster group (e.g. @vm-hosts), "
                               "or absent to let LXD pick the member"]
    if errors:
        raise ValidationError({f"{source}: {field_name}": messages
                               for field_name, messages in errors.items()})
    return Profile(name=name, description=description.strip(), instance_type=instance_type,
                   limits=limits, images=tuple(images),
                   config={key: canonical_config(key, value) for key, value in config.items()},
                   lease_hours=lease, approval=approval, lease_renewals=renewals,
                   lease_grace_hours=grace, placement=placement)


class ProfileSet:
    """The profiles in a folder, re-read whenever a file changes on disk."""

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._signature = None
        self._profiles: dict[str, Profile] = {}

    def _current_signature(self):
        try:
            entries = sorted(os.scandir(self.folder), key=lambda entry: entry.name)
        except OSError as error:
            raise ValidationError({str(self.folder): [f"cannot read profiles: {error.strerror}"]}) from None
        return tuple((entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
                     for entry in entries if entry.name.endswith(".yaml"))

    def all(self) -> dict[str, Profile]:
        """Every profile by name; raises ValidationError if any file is bad."""
        with self._lock:
            signature = self._current_signature()
            if signature != self._signature:
                self._profiles = load_folder(self.folder)
                self._signature = signature
            return dict(self._profiles)

    def get(self, name: str) -> Profile | None:
        return self.all().get(name)

    def path(self, name: str) -> Path:
        """The file of a profile (whether or not it exists)."""
        if not NAME.fullmatch(name or ""):
            raise ValidationError({"name": ["use 2 to 32 lower-case letters, digits or hyphens, "
                                            "starting with a letter"]})
        return self.folder / f"{name}.yaml"

    def text(self, name: str) -> str:
        """A profile's YAML as written in its file."""
        return self.path(name).read_text()

    def write(self, name: str, text: str) -> None:
        """Replace a profile's file atomically: a reader sees the old file
        or the new one, never half of it, and a crash keeps one of them."""
        path = self.path(name)
        temporary = path.with_name(f".{path.name}.tmp")
        with open(temporary, "w") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        self._sync_folder()

    def remove(self, name: str) -> None:
        """Delete a profile's file."""
        self.path(name).unlink()
        self._sync_folder()

    def _sync_folder(self) -> None:
        descriptor = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def load_folder(folder: Path) -> dict[str, Profile]:
    """Parse every *.yaml in a folder; all files' errors are reported together."""
    profiles, errors = {}, {}
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            profiles[path.stem] = parse_profile(path.stem, path.read_text(), path.name)
        except ValidationError as error:
            errors.update(error.errors)
    if errors:
        raise ValidationError(errors)
    return profiles


def init_app(app):
    """Attach the profile set for the configured folder."""
    app.extensions["warren.profiles"] = ProfileSet(app.config["WARREN"].profiles_dir)


def profile_set() -> ProfileSet:
    """The app's profile folder."""
    from flask import current_app
    return current_app.extensions["warren.profiles"]


def current_profiles() -> dict[str, Profile]:
    """The app's profiles, re-read if a file changed."""
    return profile_set().all()
