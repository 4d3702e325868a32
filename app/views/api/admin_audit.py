"""Admins: the audit log."""
from ... import audit
from ...store import get_db
from . import pages, resource
from .schemas import AuditArgs, AuditEntrySchema, page_of

bp = resource("admin_audit", "Admins: the audit log.", admin=True)


@bp.route("/audit")
@bp.arguments(AuditArgs, location="query")
@bp.response(200, page_of(AuditEntrySchema))
def entries(args):
    """Every entry, newest first, narrowed by exact-match filters and since."""
    filters = {key: args.get(key, "").strip() for key in (*audit.FILTERS, "since")}
    return pages.page_from(lambda limit, offset: audit.entries(get_db(), filters, limit=limit,
                                                               offset=offset), args)
