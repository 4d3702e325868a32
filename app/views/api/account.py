"""Who you are, your tokens, usage, quota requests and activity."""
import dataclasses

from flask import g
from flask.views import MethodView

from ... import approvals, audit, tokens, usage
from ...store import get_db
from . import pages, resource
from .schemas import (ApprovalSchema, AuditEntrySchema, MeSchema, PageArgs, QuotaRequestSchema,
                      TokenCreateSchema, TokenCreatedSchema, TokenSchema, UsageSchema, page_of)

bp = resource("account", "You: your tokens, usage, quota requests and activity.")


@bp.route("/me")
@bp.response(200, MeSchema)
def me():
    """The token's owner and the token."""
    return {**g.user, "token": g.token}


@bp.route("/tokens")
class Tokens(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(TokenSchema))
    def get(self, args):
        """Your tokens, newest first, revoked ones too (never their secrets)."""
        return pages.page(tokens.of_member(g.user), args)

    @bp.arguments(TokenCreateSchema)
    @bp.response(201, TokenCreatedSchema)
    def post(self, body):
        """Make a token; the answer holds it, once. A token never makes one
        of a wider scope than its own."""
        wanted = body["scope"]
        if wanted in tokens.SCOPES and (wanted != "admin" or g.user["role"] == "admin"):
            tokens.require(g.token, g.user, wanted)  # (a member's admin wish: the service refuses)
        row, secret = tokens.create(g.user, body.get("name"), body["scope"], body["days"])
        return {**row, "token": secret}


@bp.route("/tokens/<int:token_id>", methods=["DELETE"])
@bp.response(200, TokenSchema)
def revoke_token(token_id):
    """Revoke a token; it stops working at once."""
    return tokens.revoke(g.user, token_id)


@bp.route("/usage")
@bp.response(200, UsageSchema)
def my_usage():
    """Your quota, what you hold, and LXD's live figures."""
    report = usage.member_usage(g.user)
    return {**dataclasses.asdict(report), "quota": dataclasses.asdict(report.quota),
            "used": report.reserved}


@bp.route("/requests")
class Requests(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(ApprovalSchema))
    def get(self, args):
        """Your requests (quota and instances awaiting approval) and their outcomes."""
        return pages.page(approvals.of_member(g.user), args)

    @bp.arguments(QuotaRequestSchema)
    @bp.response(201, ApprovalSchema)
    def post(self, body):
        """Ask the admins for a larger quota."""
        row = approvals.request_quota(g.user, body["values"], body["reason"])
        return {**row, "username": g.user["username"], "summary": approvals.describe(row)}


@bp.route("/activity")
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_of(AuditEntrySchema))
def activity(args):
    """The audit entries about you, newest first."""
    return pages.page_from(lambda limit, offset: audit.entries(
        get_db(), member_id=g.user["id"], limit=limit, offset=offset), args)
