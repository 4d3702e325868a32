"""Where the CLI keeps Warren's URL and the token: $XDG_CONFIG_HOME/warren/
config.json (default ~/.config), readable by its owner only (0600)."""
import json
import os
from pathlib import Path


def path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "warren" / "config.json"


def load() -> dict | None:
    try:
        return json.loads(path().read_text())
    except (OSError, ValueError):
        return None


def save(url: str, token: str) -> Path:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": url, "token": token}, handle)
    os.chmod(temporary, 0o600)
    os.replace(temporary, target)
    return target
