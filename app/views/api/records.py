"""Members' own DNS records below their subtree: list, add, remove. A
record is saved at once (201) and published on the name server within
moments."""
from flask import g
from flask.views import MethodView

from ... import records
from ...store import get_db
from . import pages, resource
from .feature_schemas import RecordCreateSchema, RecordSchema
from .schemas import PageArgs, page_of

bp = resource("records", "Your DNS records (CNAME, TXT, MX, AAAA, SRV, CAA) below your subtree.")


@bp.route("/records")
class Records(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(RecordSchema))
    def get(self, args):
        """Your records, by name and type."""
        return pages.page(records.of_member(get_db(), g.user["id"]), args)

    @bp.arguments(RecordCreateSchema)
    @bp.response(201, RecordSchema)
    def post(self, body):
        """Add a record (every field checked at once; your share caps the count)."""
        return records.add(g.user, body.get("name"), body.get("rtype"), body.get("value"),
                           body.get("ttl"))


@bp.route("/records/<int:record_id>", methods=["DELETE"])
@bp.response(200, RecordSchema)
def remove_record(record_id):
    """Remove one of your records; the removed record."""
    return records.remove(g.user, record_id)
