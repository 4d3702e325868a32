"""SSH public keys: parsed and checked with `cryptography`, normalised to
"type base64 comment", fingerprinted as OpenSSH does (SHA256:...)."""
import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.exceptions import UnsupportedAlgorithm

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521")
COMMENT = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,99}$")  # printable, no control characters
MIN_RSA_BITS = 2048
MAX_KEYS = 20


@dataclass(frozen=True)
class PublicKey:
    kind: str
    blob: str  # base64
    comment: str

    @property
    def line(self) -> str:
        return f"{self.kind} {self.blob}" + (f" {self.comment}" if self.comment else "")

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_key(line: str) -> PublicKey:
    """One public key line; ValueError says what is wrong with it."""
    parts = line.strip().split(None, 2)
    if not parts:
        raise ValueError("is empty")
    if parts[0] not in KEY_TYPES:
        if any(f" {kind} " in f" {line.strip()} " for kind in KEY_TYPES):
            raise ValueError("has options before the key type; paste the key alone "
                             "(Warren adds no command= or from= options)")
        raise ValueError(f"starts with {parts[0][:20]!r}, not a key type ({', '.join(KEY_TYPES)}); "
                         "paste the contents of your .pub file, not the private key")
    if len(parts) < 2:
        raise ValueError("has a key type but no key data")
    kind, blob = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    damaged = ValueError("is not a valid public key (the key data is damaged or cut short)")
    try:
        raw = base64.b64decode(blob, validate=True)
        length = int.from_bytes(raw[:4], "big")
        inner_kind = raw[4:4 + length].decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise damaged from None
    if inner_kind != kind:
        raise ValueError(f"says {kind} but holds a different kind of key ({inner_kind[:30]})")
    try:
        key = serialization.load_ssh_public_key(f"{kind} {blob}".encode())
    except (ValueError, UnsupportedAlgorithm):
        raise damaged from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ValueError(f"is a {key.key_size}-bit RSA key; use at least {MIN_RSA_BITS} bits or ed25519")
    if comment and not COMMENT.match(comment):
        raise ValueError("has a comment with control characters or over 100 characters")
    return PublicKey(kind, blob, comment)


def parse_keys(text: str) -> tuple[list[PublicKey], list[str]]:
    """Every key in pasted text, one per line: (keys, problems by line)."""
    keys, problems = [], []
    lines = [line for line in (text or "").replace("\r\n", "\n").split("\n")]
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            key = parse_key(line)
        except ValueError as error:
            problems.append(f"Line {number} {error}.")
            continue
        if key.fingerprint not in {existing.fingerprint for existing in keys}:
            keys.append(key)
    if len(keys) > MAX_KEYS:
        problems.append(f"At most {MAX_KEYS} keys at once.")
    return keys, problems
