"""The shapes of the API's resources around an instance: snapshots, port
forwards, websites, DNS records and custom domains (schemas.py holds the
core ones: errors, pages, instances, accounts, admins). As there, they
check types only; the service functions check values, every field at once."""
from marshmallow import Schema, fields

from .schemas import Int, Str, text


# Snapshots

class SnapshotSchema(Schema):
    name = Str(required=True)
    size = Int(required=True, metadata={"description": "Bytes only this snapshot holds (it counts "
                                                       "against your disk quota)."})
    created_at = Str(required=True)
    expires_at = text(metadata={"description": "When LXD deletes it (scheduled ones); null: never."})
    manual = fields.Boolean(required=True, metadata={"description": "Taken by you (false: by the "
                                                                    "profile's schedule)."})
    action = text(metadata={"description": "What Warren is still doing with it: take, restore or "
                                           "delete; null once done."})
    url = Str(required=True)


class SnapshotDetailSchema(SnapshotSchema):
    restore_warnings = fields.List(Str(), required=True, metadata={
        "description": "What a restore to this snapshot loses (and keeps), as the web page says."})


class SnapshotCreateSchema(Schema):
    name = Str(load_default="", metadata={"description": "Empty: a name with the date and time."})


class RestoreSchema(Schema):
    confirm = fields.Boolean(load_default=False, metadata={
        "description": "Must be true: a restore loses what restore_warnings says (without it, "
                       "422 names every loss under fields.confirm)."})


class SnapshotAcceptedSchema(Schema):
    instance_id = Int(required=True)
    name = Str(required=True)
    action = Str(required=True)
    url = Str(required=True, metadata={"description": "The snapshot: its action is null once "
                                                      "done (a failed take: 404)."})
    progress_url = Str(required=True, metadata={"description": "The instance's progress; its "
                                                               "events tell each step and failure."})
    warnings = fields.List(Str(), metadata={"description": "What the restore loses (restores only)."})


# Backups

class BackupSchema(Schema):
    id = Int(required=True)
    created_at = Str(required=True, metadata={"description": "When it was made (queued)."})
    finished_at = text()
    age = Str(required=True, metadata={"description": "How long ago it was made: 5 min, 3 h, 2 d."})
    size = Int(allow_none=True, required=True, metadata={"description": "Bytes of the backup file."})
    reason = Str(required=True, metadata={"description": "schedule or manual."})
    state = Str(required=True, metadata={"description": "queued, running, done or failed; only "
                                                        "done ones can be restored."})
    sha256 = text(metadata={"description": "The file's checksum, read whole before a restore."})
    error = text(metadata={"description": "Why it failed, or why a restore refused it (its "
                                          "checksum)."})


class BackupAcceptedSchema(Schema):
    instance_id = Int(required=True)
    backup_id = Int(required=True)
    action = Str(required=True, metadata={"description": "backup or restore."})
    url = Str(required=True, metadata={"description": "The instance's backups: this one's state "
                                                      "is done (or failed) once made."})
    progress_url = Str(required=True, metadata={"description": "The instance's progress; its "
                                                               "events tell each step and failure."})


class BackupOverviewSchema(Schema):
    instance_id = Int(required=True)
    member = Str(required=True)
    name = Str(required=True)
    deleted = fields.Boolean(required=True, metadata={"description": "The instance is gone; "
                                                                     "restore-deleted brings it back."})
    last_good = fields.Nested(BackupSchema, allow_none=True, required=True)
    kept = Int(required=True, metadata={"description": "How many good backups are retained."})
    good = fields.List(fields.Nested(BackupSchema), required=True,
                       metadata={"description": "The retained good backups, newest first."})
    failure = fields.Nested(BackupSchema, allow_none=True, required=True,
                            metadata={"description": "The last failure since the last good one."})
    pending = fields.Boolean(required=True, metadata={"description": "A backup is queued or running."})


class RestoredSchema(Schema):
    instance_id = Int(required=True)
    fqdn = Str(required=True)
    ipv4 = text(metadata={"description": "Its old address, or a new one when that was taken."})
    status = Str(required=True)


# Port forwards

class ForwardSchema(Schema):
    id = Int(required=True)
    protocol = Str(required=True)
    public_port = Int(required=True)
    instance_port = Int(required=True)
    address = text(metadata={"description": "The public address the port is on."})
    created_at = Str(required=True)


class ForwardCreateSchema(Schema):
    protocol = Str(load_default="tcp", metadata={"description": "tcp or udp."})
    instance_port = Int(metadata={"description": "The port your instance listens on."})
    public_port = Int(allow_none=True, metadata={
        "description": "A port of the co-op's range; omit it for the first free one."})


# Websites

class CertificateSchema(Schema):
    state = Str(required=True, metadata={"description": "pending, valid or failed."})
    not_after = text()
    error = text()


class SiteSchema(Schema):
    instance_id = Int(required=True)
    mode = Str(required=True, metadata={"description": "terminate or passthrough."})
    port = Int(required=True, metadata={"description": "The instance's port the proxy sends to."})
    url = Str(required=True)
    hostname = Str(required=True)
    created_at = Str(required=True)
    certificate = fields.Nested(CertificateSchema, allow_none=True,
                                metadata={"description": "terminate only: the proxy's certificate."})


class SitePublishSchema(Schema):
    mode = Str(load_default="terminate", metadata={
        "description": "terminate: the proxy holds a certificate and sends HTTP to port; "
                       "passthrough: TLS goes to the instance's port 443 untouched."})
    port = Int(allow_none=True, metadata={"description": "terminate only; default 80."})


# DNS records

class RecordSchema(Schema):
    id = Int(required=True)
    fqdn = Str(required=True)
    rtype = Str(required=True)
    value = Str(required=True)
    ttl = Int(required=True)
    created_at = Str(required=True)


class RecordCreateSchema(Schema):
    name = Str(metadata={"description": "Below your subtree: blog, _dmarc.web, or web itself for "
                                        "MX, TXT, CAA and SRV."})
    rtype = Str(metadata={"description": "CNAME, TXT, MX, AAAA, SRV or CAA."})
    value = Str(metadata={"description": "Names are taken as absolute: web.example.org."})
    ttl = Int(allow_none=True, metadata={"description": "Seconds; omit it for the zone's default."})


# Custom domains

class DomainSchema(Schema):
    id = Int(required=True)
    hostname = Str(required=True)
    instance_id = Int(required=True)
    instance_name = Str(required=True)
    instance_fqdn = Str(required=True)
    state = Str(required=True, metadata={"description": "pending (not served until its proof is "
                                                        "found), verified (served) or lapsed."})
    proof = text(metadata={"description": "The record that proved it last: txt or cname."})
    result = text(metadata={"description": "What the last lookup found."})
    created_at = Str(required=True)
    checked_at = text()
    seen_at = text()
    next_check_at = Str(required=True)
    apex = fields.Boolean(required=True, metadata={
        "description": "The name is a registered domain itself: only the TXT proof works there."})
    txt_name = Str(required=True)
    txt_value = Str(required=True)
    txt_line = Str(required=True, metadata={"description": "The TXT proof as a zone file line."})
    cname_name = Str(required=True)
    cname_target = Str(required=True)
    cname_line = Str(required=True, metadata={"description": "The CNAME proof as a zone file line."})


class DomainCreateSchema(Schema):
    hostname = Str(metadata={"description": "Your own name, such as www.example.org."})
    instance = Int(metadata={"description": "The id of one of your ready instances."})


class DomainMoveSchema(Schema):
    instance = Int(metadata={"description": "The id of another of your ready instances."})
