"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106)."""
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id; parameters are recorded in each hash


@cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both paths cost the
    same (made on first use: every process, the worker too, imports this)."""
    return _hasher.hash("warren-timing-equaliser")


def hash_password(password: str) -> str:
    """An argon2id hash of the password, with a fresh salt."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; constant work for an unknown user."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)
