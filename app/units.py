"""Sizes as LXD writes them (512MiB, 4GiB) to and from bytes."""
import re

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4,
         "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4}
SIZE = re.compile(r"^\s*([0-9]+)\s*(B|KiB|MiB|GiB|TiB|kB|MB|GB|TB)\s*$")


def parse_size(text) -> int:
    """Bytes in a size such as '512MiB'; ValueError with a hint otherwise."""
    match = SIZE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size like 512MiB or 4GiB")
    return int(match[1]) * UNITS[match[2]]


def format_size(size: int) -> str:
    """The shortest exact binary form of a byte count, e.g. 536870912 -> 512MiB."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size and size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]}{unit}"
    return f"{size}B"
