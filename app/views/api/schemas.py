"""The shapes the API takes and gives (marshmallow schemas). They document
the API (OpenAPI) and check types only; every rule about values lives in
the service functions, which report every field error at once."""
from marshmallow import Schema, fields, validate

Str = fields.String
Int = fields.Integer


def text(**kwargs):
    return Str(allow_none=True, **kwargs)


class ErrorSchema(Schema):
    error = Str(required=True, metadata={"description": "What went wrong, for people."})
    status = Int(required=True, metadata={"description": "The HTTP status again."})
    fields = fields.Dict(keys=Str(), values=fields.List(Str()),
                         metadata={"description": "Every field error at once: field -> messages."})


class PageArgs(Schema):
    page = Int(load_default=1, validate=validate.Range(1, 1_000_000))
    per_page = Int(load_default=50, validate=validate.Range(1, 200))


_PAGES: dict[type, type] = {}


def page_of(item: type[Schema]) -> type[Schema]:
    """The schema of one page of a list: items, page, per_page, next (the
    next page's URL, null on the last)."""
    if item not in _PAGES:
        _PAGES[item] = _page_schema(item)
    return _PAGES[item]


def _page_schema(item: type[Schema]) -> type[Schema]:
    return type(f"{item.__name__.removesuffix('Schema')}PageSchema", (Schema,), {
        "items": fields.List(fields.Nested(item), required=True),
        "page": Int(required=True), "per_page": Int(required=True),
        "next": text(required=True)})


# Members' things

class SshSchema(Schema):
    host = Str(metadata={"description": "The instance's DNS name (HostKeyAlias)."})
    address = Str(metadata={"description": "The address the jump host connects to."})
    user = Str()
    jump = Str(metadata={"description": "user@host:port of the jump host (ProxyJump)."})


class InstanceSchema(Schema):
    id = Int(required=True)
    name = Str(required=True)
    fqdn = Str(required=True)
    profile = Str(required=True)
    image = Str(required=True)
    instance_type = Str(required=True)
    status = Str(required=True, metadata={"description": "Warren's status: queued, creating, "
                                          "starting, publishing, ready, deleting, failed, ..."})
    state = Str(metadata={"description": "LXD's state (Running, Stopped), unknown when LXD "
                                         "does not answer."})
    error = text()
    ipv4 = text()
    ipv6 = text()
    location = text(metadata={"description": "The LXD cluster member it runs on (empty on a "
                                             "single server)."})
    lease_expires_at = text()
    created_at = Str(required=True)
    url = Str(required=True)
    progress_url = Str(required=True)
    ssh = fields.Nested(SshSchema, allow_none=True)


class InstanceCreateSchema(Schema):
    name = Str(metadata={"description": "A DNS label: the hostname and <name>.<you>.<zone>."})
    profile = Str()
    image = Str()
    keys = Str(load_default="", metadata={"description": "SSH public keys, one per line."})
    saved_key_ids = fields.List(Int(), load_default=list,
                                metadata={"description": "Ids of saved keys (GET /keys)."})


class EventSchema(Schema):
    at = Str(required=True)
    step = Str(required=True)
    message = Str(required=True)


class ProgressSchema(Schema):
    status = Str(required=True)
    error = text()
    ipv4 = text()
    ipv6 = text()
    fqdn = Str(required=True)
    events = fields.List(fields.Nested(EventSchema), required=True)


class AcceptedSchema(Schema):
    id = Int(required=True)
    action = Str(required=True)
    status = Str(required=True)
    progress_url = Str(required=True)
    waits = Str(metadata={"description": "Set when the action waits in the queue: why, and until when "
                                         "(the cluster member the instance runs on is offline)."})


class LeaseSchema(Schema):
    id = Int(required=True)
    lease_expires_at = Str(required=True)


class OfferedProfileSchema(Schema):
    name = Str(required=True)
    description = Str(required=True)
    instance_type = Str(required=True)
    images = fields.List(Str(), required=True)
    lease_hours = Int(allow_none=True)
    approval = fields.Boolean(required=True)
    unavailable = text(metadata={"description": "Why this server cannot run it, if it cannot."})


class KeySchema(Schema):
    id = Int(required=True)
    fingerprint = Str(required=True)
    public_key = Str(required=True)
    created_at = Str(required=True)


class KeysCreateSchema(Schema):
    keys = Str(load_default="", metadata={"description": "SSH public keys, one per line."})


class KeysAddedSchema(Schema):
    added = Int(required=True)


class UsageInstanceSchema(Schema):
    name = Str()
    fqdn = Str()
    profile = Str()
    status = Str()
    state = Str()
    cpu_seconds = fields.Float()
    memory = Int()
    memory_limit = Int()
    disk = Int()
    disk_limit = Int()


class UsageSchema(Schema):
    tier = Str(required=True)
    quota = fields.Dict(keys=Str(), values=fields.Raw(), required=True)
    used = fields.Dict(keys=Str(), values=fields.Raw(), required=True)
    running = Int()
    cpu_seconds = fields.Float()
    memory = Int()
    disk = Int()
    instances = fields.List(fields.Nested(UsageInstanceSchema))
    error = text(metadata={"description": "Why LXD's live figures are missing, if they are."})


class ApprovalSchema(Schema):
    id = Int(required=True)
    kind = Str(required=True)
    state = Str(required=True)
    username = Str(required=True)
    summary = Str(required=True)
    reason = text()
    decision = text()
    decided_by = text()
    created_at = Str(required=True)
    decided_at = text()


class QuotaRequestSchema(Schema):
    values = fields.Dict(keys=Str(), values=Str(), load_default=dict,
                         metadata={"description": "What you need, e.g. {\"memory\": \"8GiB\"}."})
    reason = Str(load_default="")


class TokenSchema(Schema):
    id = Int(required=True)
    name = Str(required=True)
    prefix = Str(required=True)
    scope = Str(required=True)
    created_at = Str(required=True)
    expires_at = Str(required=True)
    revoked_at = text()
    last_used_at = text()
    last_used_from = text()
    uses = Int(required=True)


class TokenCreateSchema(Schema):
    name = Str()
    scope = Str(load_default="member", metadata={"description": "read, member or admin."})
    days = Int(load_default=90, strict=True)


class TokenCreatedSchema(TokenSchema):
    token = Str(required=True, metadata={"description": "The token; shown this once only."})


class MeSchema(Schema):
    username = Str(required=True)
    role = Str(required=True)
    tier = Str(required=True)
    token = fields.Nested(TokenSchema, required=True)


class AuditEntrySchema(Schema):
    id = Int(required=True)
    at = Str(required=True)
    actor = Str(required=True)
    via = text(metadata={"description": "The API token that acted, if one did."})
    action = Str(required=True)
    target = text()
    member = text()
    result = Str(required=True)
    detail = text()


# Admins' things

class MemberSchema(Schema):
    username = Str(required=True)
    role = Str(required=True)
    tier = Str(required=True)
    disabled = fields.Boolean(required=True)
    deleting = fields.Boolean(required=True)
    created_at = Str(required=True)
    quota = fields.Dict(keys=Str(), values=fields.Raw())
    used = fields.Dict(keys=Str(), values=fields.Raw())
    overrides = fields.Dict(keys=Str(), values=fields.Raw())


class MemberCreateSchema(Schema):
    username = Str()
    password = Str(load_default="")
    role = Str(load_default="member")
    tier = Str(load_default="full")


class ShareSchema(Schema):
    tier = Str()
    overrides = fields.Dict(keys=Str(), values=Str(), load_default=dict,
                            metadata={"description": "Quota values on top of the tier, e.g. "
                                                     "{\"memory\": \"4GiB\"}."})


class DisabledSchema(Schema):
    username = Str(required=True)
    stopping = Int(required=True)


class DeleteMemberArgs(Schema):
    confirm = Str(load_default="", metadata={"description": "The member's name again."})


class DeletingSchema(Schema):
    username = Str(required=True)
    instances = Int(required=True)


class InvitationCreateSchema(Schema):
    role = Str(load_default="member")
    tier = Str(load_default="full")
    hours = Int(load_default=72, validate=validate.Range(1, 24 * 30))


class InvitationSchema(Schema):
    url = Str(required=True, metadata={"description": "The one-time sign-up link; shown once."})


class DecisionSchema(Schema):
    reason = Str(load_default="")


class ApprovalArgs(PageArgs):
    state = Str(load_default="pending", validate=validate.OneOf(["pending", "decided"]))


class AuditArgs(PageArgs):
    actor = Str()
    member = Str()
    action = Str()
    result = Str()
    since = Str()


class ProfileSchema(Schema):
    name = Str(required=True)
    description = Str(required=True)
    instance_type = Str(required=True)
    images = fields.List(Str(), required=True)
    in_use = Int(required=True)
    unavailable = text(metadata={"description": "Why this server cannot run it, if it cannot."})


class ProfileTextSchema(Schema):
    text = Str(required=True, metadata={"description": "The profile's YAML."})


class ProfileCreateSchema(ProfileTextSchema):
    name = Str(required=True)


class ProfileDetailSchema(ProfileSchema):
    text = Str(required=True)
    etag = Str(required=True, metadata={"description": "Send it back as If-Match to save."})


class ChangeSchema(Schema):
    key = Str(required=True)
    old = Str(required=True)
    new = Str(required=True)


class ReviewSchema(Schema):
    name = Str(required=True)
    created = fields.Boolean(required=True)
    changes = fields.List(fields.Nested(ChangeSchema), required=True)
    affected = fields.List(Str(), required=True, metadata={"description": "Instances that follow."})
    problems = fields.List(Str(), required=True,
                           metadata={"description": "Why saving would be refused."})
    notes = fields.List(Str(), required=True)
