"""Members' own DNS records: CNAME, TXT, MX, AAAA, SRV and CAA records
under their subtree (blog.alice.<zone>, _acme-challenge.web.alice.<zone>,
and at an instance's own name for the types that may sit beside its
address), and the ACME keys certbot uses for one name each.

The rows in dns_records are what should be in DNS. A member's change is
checked (every field at once, inside the write lock for the quota and the
names), saved, and a `records` job publishes it (app/dns/records.py) with
the member's own key, which BIND confines to the member's subtree and to
those types (app/dns/keys.py). The reconcile pass (sync_all) does the same
for every member, so drift is repaired and nothing is lost while named is
down. An instance's deletion takes the records at its name with it;
a member's deletion takes all of them and the member's keys.
"""
import logging

import dns.exception
import dns.name

from . import audit, jobs, quotas
from .config import current_settings
from .dns import keys as dns_keys, records as dns_records
from .dns.keys import MEMBER_TYPES, Key, acme_key_name, member_key_name, new_secret
from .dns.names import OWNER_PREFIX, legacy_names, move_legacy_marker, owned_names
from .dns.zone import transfer, zone_from_settings
from .errors import BackendUnavailable, NotFound, QuotaExceeded, ValidationError
from .passes import each_guarded
from .projects import installation
from .statuses import RELEASED, sql_list
from .store import get_db, now, transaction

log = logging.getLogger(__name__)
TTL_RANGE = (60, 86400)
LABEL_TEXT = ("Use labels of letters, digits, hyphens and underscores (up to 63 each), "
              "separated by dots, like blog or _acme-challenge.web.")
TXT_CHUNK = 255


def subtree(username: str, zone: str) -> str:
    """The member's part of the zone: <member>.<zone>."""
    return f"{username}.{zone}"


def _name(text: str, username: str, zone: str, errors: dict) -> str | None:
    """The fqdn of a name given relative to the member's subtree (or whole)."""
    top = subtree(username, zone)
    text = (text or "").strip().lower().rstrip(".")
    if text == top or text in ("", "@"):
        errors["name"] = [f"Records go below {top} (like blog.{top}); the name {top} itself is "
                          "the co-op's."]
        return None
    if (text == zone or text.endswith("." + zone)) and not text.endswith("." + top):
        errors["name"] = [f"{text} is not in your subtree; your records go below {top}."]
        return None
    relative = text.removesuffix("." + top)
    if "*" in relative:
        errors["name"] = ["Wildcard records are not offered; add each name."]
        return None
    labels = relative.split(".")
    if not all(1 <= len(label) <= 63 and label.strip("-") == label and
               all(char.isascii() and (char.isalnum() or char in "-_") for char in label)
               for label in labels):
        errors["name"] = [LABEL_TEXT]
        return None
    fqdn = f"{relative}.{top}"
    if len(fqdn) > 253:
        errors["name"] = ["This makes the DNS name longer than 253 characters."]
        return None
    return fqdn


def _txt_value(value: str) -> str:
    """TXT text as typed, quoted for the zone-file syntax: text that is not
    already quoted becomes one string, cut in pieces of 255 bytes."""
    if value.startswith('"'):
        return value
    raw = value.encode()
    pieces = [raw[start:start + TXT_CHUNK] for start in range(0, len(raw), TXT_CHUNK)] or [b""]
    return " ".join('"' + piece.decode(errors="replace").replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for piece in pieces)


def _target_names(rdata) -> list[dns.name.Name]:
    return [getattr(rdata, field) for field in ("target", "exchange") if hasattr(rdata, field)]


def _value(rtype: str, text: str, errors: dict) -> str | None:
    """The record's data in canonical form (absolute names end in a dot)."""
    text = (text or "").strip()
    if not text:
        errors["value"] = ["Give the record's value."]
        return None
    if rtype == "TXT":
        text = _txt_value(text)
    try:
        rdata = dns_records.parse(rtype, text)
    except (dns.exception.DNSException, ValueError) as error:
        errors["value"] = [f"This is not a valid {rtype} value: {error or type(error).__name__}."
                           + (" Example: " + EXAMPLES[rtype] if rtype in EXAMPLES else "")]
        return None
    for target in _target_names(rdata):
        if target != dns.name.root and len(target) < 3:
            errors["value"] = [f"{target.to_text(omit_final_dot=True)} is not a full name; give "
                               "it whole, like web.example.org (names are always taken as "
                               "absolute)."]
            return None
    if rtype == "TXT" and b"".join(rdata.strings).decode(errors="replace").startswith(OWNER_PREFIX):
        errors["value"] = ["TXT values starting with 'warren owner=' are Warren's own markers."]
        return None
    return rdata.to_text()


EXAMPLES = {"CNAME": "web.example.org", "MX": "10 mail.example.org",
            "SRV": "10 5 5060 sip.example.org", "CAA": '0 issue "letsencrypt.org"',
            "AAAA": "2001:db8::1", "TXT": "v=spf1 -all"}


def _ttl(text, default: int, errors: dict) -> int | None:
    text = str(text if text is not None else "").strip()
    if not text:
        return default
    if not text.isdigit() or not TTL_RANGE[0] <= int(text) <= TTL_RANGE[1]:
        errors["ttl"] = [f"Give a TTL in seconds from {TTL_RANGE[0]} to {TTL_RANGE[1]}."]
        return None
    return int(text)


def _instance_at(db, fqdn: str) -> dict | None:
    return db.execute(f"SELECT id, name FROM instances WHERE fqdn = ? AND status NOT IN "
                      f"{sql_list(RELEASED)}", [fqdn]).fetchone()


def _clash(db, user: dict, fqdn: str, rtype: str, value: str) -> dict[str, list[str]]:
    """Why this record cannot sit where it is asked, by field (inside the
    write lock); empty when it can."""
    if db.execute("SELECT 1 FROM dns_records WHERE fqdn = ? AND rtype = ? AND value = ?",
                  [fqdn, rtype, value]).fetchone():
        return {"value": [f"{fqdn} already has this {rtype} record."]}
    others = {row[0] for row in db.execute("SELECT rtype FROM dns_records WHERE fqdn = ? "
                                           "AND user_id = ?", [fqdn, user["id"]])}
    instance = _instance_at(db, fqdn)
    if rtype == "CNAME":
        if instance is not None:
            return {"name": [f"{fqdn} is your instance {instance[1]}'s name; a CNAME cannot "
                             "share a name with its address. Use another name, like www."]}
        if others:
            return {"name": [f"{fqdn} already has {', '.join(sorted(others))} records; a CNAME "
                             "cannot share a name with other data."]}
        if value.rstrip(".") == fqdn:
            return {"value": ["A CNAME cannot point at itself."]}
    elif "CNAME" in others:
        return {"name": [f"{fqdn} is a CNAME; no other record can sit beside it."]}
    if rtype == "AAAA" and instance is not None:
        return {"name": [f"{fqdn} is your instance {instance[1]}'s name; Warren publishes its "
                         "addresses."]}
    if rtype == "TXT" and db["dns_keys"].count_where("name = ?", [fqdn + "."]):
        return {"name": [f"certbot's key for {fqdn} keeps the TXT records there; revoke the key "
                         "to keep them here instead."]}
    return {}


def add(user: dict, name: str, rtype: str, value: str, ttl=None) -> dict:
    """Add one record to the member's subtree (every field checked at once);
    the new row. Published by a job within moments."""
    settings = current_settings()
    db = get_db()
    rtype = (rtype or "").strip().upper()
    errors: dict[str, list[str]] = {}
    fqdn = _name(name, user["username"], settings.dns_zone, errors)
    if rtype not in MEMBER_TYPES:
        errors["rtype"] = [f"Choose one of {', '.join(MEMBER_TYPES)}."]
        canonical = None
    else:
        canonical = _value(rtype, value, errors)
    seconds = _ttl(ttl, max(settings.dns_ttl, TTL_RANGE[0]), errors)
    target = fqdn or subtree(user["username"], settings.dns_zone)
    with audit.audited(db, user["username"], "dns.record.add", target, member=user["username"],
                       detail=f"{rtype} {canonical or (value or '')[:200]}"):
        if errors:
            raise ValidationError(errors)
        with transaction(db):
            clash = _clash(db, user, fqdn, rtype, canonical)
            if clash:
                raise ValidationError(clash)
            quota = quotas.quota_for(db, user)
            held = quotas.usage(db, user["id"])["records"]
            if held + 1 > quota.records:
                raise QuotaExceeded(f"Over quota — DNS records: you hold {held} of your "
                                    f"{quota.records} (ACME keys count too); remove one first or "
                                    "ask for more.")
            record_id = db["dns_records"].insert({
                "user_id": user["id"], "fqdn": fqdn, "rtype": rtype, "value": canonical,
                "ttl": seconds, "created_at": now()}).last_pk
            jobs.enqueue_member(db, user["id"], "records")
    jobs.wake_worker(settings)
    return db["dns_records"].get(record_id)


def _own(db, table: str, user: dict, row_id) -> dict:
    rows = list(db[table].rows_where("id = ? AND user_id = ?", [row_id, user["id"]]))
    if not rows:
        raise NotFound("No such record." if table == "dns_records" else "No such key.")
    return rows[0]


def remove(user: dict, record_id) -> dict:
    """Delete one of the member's records (NotFound for anyone else's)."""
    db = get_db()
    row = _own(db, "dns_records", user, record_id)
    with audit.audited(db, user["username"], "dns.record.remove", row["fqdn"],
                       member=user["username"], detail=f"{row['rtype']} {row['value']}"):
        with transaction(db):
            db.execute("DELETE FROM dns_records WHERE id = ?", [row["id"]])
            jobs.enqueue_member(db, user["id"], "records")
    jobs.wake_worker(current_settings())
    return row


def of_member(db, user_id: int) -> list[dict]:
    """A member's records, by name and type."""
    return list(db["dns_records"].rows_where("user_id = ?", [user_id], order_by="fqdn, rtype, value"))


def acme_keys(db, user_id: int) -> list[dict]:
    """A member's ACME keys (without their secrets)."""
    return [{key: value for key, value in row.items() if key != "secret"}
            for row in db["dns_keys"].rows_where("user_id = ? AND kind = 'acme'", [user_id],
                                                 order_by="name")]


# --- keys -----------------------------------------------------------------

def _wanted_keys(db) -> list[Key]:
    mine = installation()
    return [Key(row["name"], row["kind"], row["secret"], mine)
            for row in db["dns_keys"].rows_where(order_by="name")]


def apply_keys(db, settings) -> bool:
    """Make BIND know exactly this Warren's keys (rows); True if it changed."""
    return dns_keys.apply(settings, installation(), _wanted_keys(db))


def _member_key(db, settings, user: dict) -> dict:
    """The member's key row, made (and given to BIND) on first need."""
    name = member_key_name(user["username"], settings.dns_zone)
    row = db.execute("SELECT * FROM dns_keys WHERE name = ?", [name]).fetchone()
    if row is None:
        with transaction(db):
            db.execute("INSERT OR IGNORE INTO dns_keys (user_id, kind, name, secret, created_at) "
                       "VALUES (?, 'member', ?, ?, ?)", [user["id"], name, new_secret(), now()])
        apply_keys(db, settings)
    return next(db["dns_keys"].rows_where("name = ?", [name]))


def create_acme_key(user: dict, name: str) -> tuple[dict, str]:
    """A key certbot can use to set TXT records at _acme-challenge.<name>
    and nowhere else; (the row, its secret: shown once)."""
    settings = current_settings()
    db = get_db()
    errors: dict[str, list[str]] = {}
    fqdn = _name(name, user["username"], settings.dns_zone, errors)
    if fqdn and fqdn.startswith("_acme-challenge."):
        fqdn = fqdn.removeprefix("_acme-challenge.")
    key_name = acme_key_name(fqdn) if fqdn else ""
    with audit.audited(db, user["username"], "dns.acme-key.create", key_name or (name or "")[:200],
                       member=user["username"]):
        if errors:
            raise ValidationError({"acme_name": errors["name"]})
        secret = new_secret()
        with transaction(db):
            if db["dns_keys"].count_where("name = ?", [key_name]):
                raise ValidationError({"acme_name": [f"There is a key for {fqdn} already; revoke "
                                                     "it first to make a new one."]})
            quota = quotas.quota_for(db, user)
            held = quotas.usage(db, user["id"])["records"]
            if held + 1 > quota.records:
                raise QuotaExceeded(f"Over quota — DNS records: you hold {held} of your "
                                    f"{quota.records} (ACME keys count too).")
            key_id = db["dns_keys"].insert({"user_id": user["id"], "kind": "acme",
                                            "name": key_name, "secret": secret,
                                            "created_at": now()}).last_pk
    try:
        apply_keys(db, settings)
    except BackendUnavailable as error:  # the reconcile pass gives it to named later
        log.warning("the ACME key %s waits for named: %s", key_name, error)
    row = {key: value for key, value in db["dns_keys"].get(key_id).items() if key != "secret"}
    return row, secret


def revoke_acme_key(user: dict, key_id) -> dict:
    """Take one of the member's ACME keys away from BIND (NotFound for others')."""
    settings = current_settings()
    db = get_db()
    row = _own(db, "dns_keys", user, key_id)
    if row["kind"] != "acme":
        raise NotFound("No such key.")
    with audit.audited(db, user["username"], "dns.acme-key.revoke", row["name"],
                       member=user["username"]):
        with transaction(db):
            db.execute("DELETE FROM dns_keys WHERE id = ?", [row["id"]])
            jobs.enqueue_member(db, user["id"], "records")  # its TXT records go too
    try:
        apply_keys(db, settings)
    except BackendUnavailable as error:
        log.warning("revoking %s waits for named: %s", row["name"], error)
    jobs.wake_worker(settings)
    return row


def certbot_credentials(settings, key_name: str, secret: str) -> str:
    """The credentials file certbot's dns-rfc2136 plugin reads."""
    server, port = (settings.dns_public_address, 53) if settings.dns_public_address \
        else (settings.dns_server, settings.dns_port)
    return (f"dns_rfc2136_server = {server}\ndns_rfc2136_port = {port}\n"
            f"dns_rfc2136_name = {key_name}\ndns_rfc2136_secret = {secret}\n"
            "dns_rfc2136_algorithm = HMAC-SHA256\n")


# --- publishing -------------------------------------------------------------

def _keep(db, user_id: int, instance_names: set[str]):
    """What in a member's subtree is not theirs to manage through rows:
    the AAAA records Warren publishes for instances, and TXT records at the
    names of their ACME keys (certbot's)."""
    acme = {row[0].removesuffix(".") for row in db.execute(
        "SELECT name FROM dns_keys WHERE user_id = ? AND kind = 'acme'", [user_id])}
    return lambda fqdn, rtype: (rtype == "AAAA" and fqdn in instance_names) or \
        (rtype == "TXT" and fqdn in acme)


def _desired(db, user_id: int) -> list[dns_records.Record]:
    return [dns_records.Record(row["fqdn"], row["rtype"], row["value"], row["ttl"])
            for row in of_member(db, user_id)]


def _sync(db, settings, zone, user: dict, transferred, instance_names: set[str]) -> list[str]:
    key = _member_key(db, settings, user)
    member_zone = zone.signed_by(key["name"], key["secret"])
    top = subtree(user["username"], settings.dns_zone)
    keep = _keep(db, user["id"], instance_names)
    actual = dns_records.in_zone(transferred, top, keep)
    desired = {key: value for key, value in dns_records.wanted(_desired(db, user["id"])).items()
               if not keep(*key)}
    lines = each_guarded(dns_records.differing_names(desired, actual),
                         lambda fqdn: f"the DNS records of {fqdn}",
                         lambda fqdn: dns_records.sync_name(member_zone, fqdn, desired, actual))
    return [f"DNS records {line}" for line in lines if line]


def _instance_names(zone, transferred) -> set[str]:
    return set(owned_names(zone, transferred))


def sync_member(db, settings, user: dict) -> list[str]:
    """Publish one member's records as the rows say (the records job)."""
    zone = zone_from_settings(settings)
    apply_keys(db, settings)
    transferred = transfer(zone)
    return _sync(db, settings, zone, user, transferred, _instance_names(zone, transferred))


def sync_all(db, settings) -> list[str]:
    """The reconcile pass's part: BIND knows this Warren's keys, names an
    older Warren marked get their marker moved, and every member who has a
    key gets their records published as the rows say (each in its own guard)."""
    zone = zone_from_settings(settings)
    apply_keys(db, settings)
    transferred = transfer(zone)
    lines = _move_legacy_markers(db, settings, zone, transferred)
    if lines:
        transferred = transfer(zone)
    names = _instance_names(zone, transferred)
    users = list(db.query("SELECT u.* FROM users u WHERE u.deleting = 0 AND (EXISTS (SELECT 1 "
                          "FROM dns_keys k WHERE k.user_id = u.id AND k.kind = 'member') OR EXISTS "
                          "(SELECT 1 FROM dns_records r WHERE r.user_id = u.id))"))
    for done in each_guarded(users, lambda user: f"the DNS records of {user['username']}",
                             lambda user: _sync(db, settings, zone, user, transferred, names)):
        lines += done
    return lines


def _move_legacy_markers(db, settings, zone, transferred) -> list[str]:
    mine = "@" + installation()
    legacy = {fqdn: owner for fqdn, owner in legacy_names(zone, transferred).items()
              if owner.endswith(mine)}

    def move(item):
        fqdn, owner = item
        users = list(db["users"].rows_where("username = ?", [owner.removesuffix(mine)]))
        if not users:
            return None
        key = _member_key(db, settings, users[0])
        move_legacy_marker(zone, zone.signed_by(key["name"], key["secret"]), fqdn, owner)
        return f"moved the owner marker of {fqdn} out of the member's subtree"

    return [line for line in each_guarded(sorted(legacy.items()), lambda item: item[0], move) if line]


def withdraw_instance(db, settings, instance: dict) -> None:
    """An instance goes: the member's records at its own name go with it
    (MX, TXT, CAA, SRV that described it). Records elsewhere that point at
    it (a CNAME) stay: they are names of their own. With named down the
    reconcile pass removes them later."""
    with transaction(db):
        removed = db.execute("DELETE FROM dns_records WHERE fqdn = ? AND user_id = ?",
                             [instance["fqdn"], instance["user_id"]]).rowcount
    if removed:
        user = db["users"].get(instance["user_id"])
        try:
            sync_member(db, settings, user)
        except BackendUnavailable as error:
            log.warning("the records at %s go when named is back: %s", instance["fqdn"], error)


def withdraw_member(db, settings, user: dict) -> None:
    """A member is being deleted: every record of theirs leaves DNS, then
    their keys leave BIND. Raises while named is unreachable (the member
    deletion pass tries again)."""
    had_keys = db["dns_keys"].count_where("user_id = ?", [user["id"]])
    with transaction(db):
        db.execute("DELETE FROM dns_records WHERE user_id = ?", [user["id"]])
        db.execute("DELETE FROM dns_keys WHERE user_id = ? AND kind = 'acme'", [user["id"]])
    if not had_keys:
        return  # nothing was ever published for them
    if db["dns_keys"].count_where("user_id = ?", [user["id"]]):
        sync_member(db, settings, user)  # with no rows: removes everything below the subtree
    with transaction(db):
        db.execute("DELETE FROM dns_keys WHERE user_id = ?", [user["id"]])
    apply_keys(db, settings)
