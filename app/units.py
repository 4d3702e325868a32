"""Sizes as LXD writes them (512MiB, 4GiB) to and from bytes, and the
short quote of a bad value that error messages use."""
import re

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4, "PiB": 1024 ** 5,
         "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4, "PB": 1000 ** 5}
# At most 20 digits: int() of a longer string costs time, and no size needs them.
SIZE = re.compile(r"\s*([0-9]{1,20})\s*(B|KiB|MiB|GiB|TiB|PiB|kB|MB|GB|TB|PB)\s*")
MAX_QUOTED = 40  # characters of a bad value that a message repeats


def shown(value, limit: int = MAX_QUOTED) -> str:
    """A value as text for a message, cut to `limit` characters with '…',
    so that an error never echoes unbounded input."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** limit:
        return f"a number of more than {limit} digits"  # str() of it is slow, or refused
    text = value if isinstance(value, str) else str(value)
    return text[:limit] + "…" if len(text) > limit else text


def quoted(value, limit: int = MAX_QUOTED) -> str:
    """A value in quotes for a message, cut like shown()."""
    return repr(shown(value, limit))


def parse_size(text) -> int:
    """Bytes in a size such as '512MiB'; ValueError with a hint otherwise."""
    match = SIZE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{quoted(text)} is not a size like 512MiB or 4GiB")
    return int(match[1]) * UNITS[match[2]]


def show_size(size: int) -> str:
    """A size for people: exact when it is whole MiB (512MiB, 8GiB), else
    to two decimals (24.03MiB), as measured sizes are."""
    if size % UNITS["MiB"] == 0:
        return format_size(size)
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size >= UNITS[unit]:
            return f"{size / UNITS[unit]:.2f}{unit}"
    return f"{size}B"


def format_size(size: int) -> str:
    """The shortest exact binary form of a byte count, e.g. 536870912 -> 512MiB."""
    for unit in ("PiB", "TiB", "GiB", "MiB", "KiB"):
        if size and size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]}{unit}"
    return f"{size}B"


def approximate_size(size: int) -> str:
    """A byte count for people, to one decimal: 1.4 MiB."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size >= UNITS[unit]:
            return f"{size / UNITS[unit]:.1f} {unit}"
    return f"{size} B"
