"""Admins: the approval queue (instance and quota requests)."""
from flask import g

from ... import approvals
from . import pages, resource
from .schemas import ApprovalArgs, ApprovalSchema, DecisionSchema, page_of

bp = resource("admin_approvals", "Admins: requests waiting for a decision.", admin=True)


@bp.route("/approvals")
@bp.arguments(ApprovalArgs, location="query")
@bp.response(200, page_of(ApprovalSchema))
def queue(args):
    """Waiting requests (state=pending) or the recent decisions (state=decided)."""
    return pages.page(approvals.pending() if args["state"] == "pending" else approvals.decided(), args)


def _decide(approval_id: int, approve: bool, reason: str) -> dict:
    approvals.decide(g.user, approval_id, approve, reason)
    return approvals.one(approval_id)


@bp.route("/approvals/<int:approval_id>/approve", methods=["POST"])
@bp.arguments(DecisionSchema)
@bp.response(200, ApprovalSchema)
def approve(body, approval_id):
    """Approve a waiting request (it takes effect at once)."""
    return _decide(approval_id, True, body["reason"])


@bp.route("/approvals/<int:approval_id>/deny", methods=["POST"])
@bp.arguments(DecisionSchema)
@bp.response(200, ApprovalSchema)
def deny(body, approval_id):
    """Deny a waiting request, with a reason the member sees."""
    return _decide(approval_id, False, body["reason"])
