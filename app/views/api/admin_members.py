"""Admins: members, their shares, invitations; disable, enable, delete."""
import dataclasses

from flask import g, url_for
from flask.views import MethodView

from ... import accounts, members, quotas, shares
from ...store import get_db
from . import pages, resource
from .schemas import (DeleteMemberArgs, DeletingSchema, DisabledSchema, InvitationCreateSchema,
                      InvitationSchema, MemberCreateSchema, MemberSchema, PageArgs, ShareSchema,
                      page_of)

bp = resource("admin_members", "Admins: members and their shares.", admin=True)


def present(user: dict) -> dict:
    db = get_db()
    return {**user, "disabled": bool(user["disabled"]), "deleting": bool(user["deleting"]),
            "quota": dataclasses.asdict(quotas.quota_for(db, user)),
            "used": quotas.usage(db, user["id"]), "overrides": members.overrides_of(user)}


@bp.route("/members")
class Members(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(MemberSchema))
    def get(self, args):
        """Every account by name, with share, quota and use."""
        return pages.page([{**row, "disabled": bool(row["disabled"]), "deleting": bool(row["deleting"]),
                           "quota": dataclasses.asdict(row["quota"])} for row in members.overview()],
                          args)

    @bp.arguments(MemberCreateSchema)
    @bp.response(201, MemberSchema)
    def post(self, body):
        """Create an account with a password you hand over."""
        user = members.create_member(g.user, body.get("username"), body["password"], body["role"],
                                     body["tier"])
        return present(user), 201, {"Location": url_for("admin_members.member",
                                                        username=user["username"])}


@bp.route("/members/<username>", methods=["GET"])
@bp.response(200, MemberSchema)
def member(username):
    """One account with its share, quota and use."""
    return present(accounts.find_user(username))


@bp.route("/members/<username>", methods=["DELETE"])
@bp.arguments(DeleteMemberArgs, location="query")
@bp.response(202, DeletingSchema)
def delete_member(args, username):
    """Delete a member with everything they have (?confirm=<username>)."""
    return {"username": username,
            "instances": members.delete_member(g.user, username, args["confirm"])}


@bp.route("/members/<username>/share", methods=["PUT"])
@bp.arguments(ShareSchema)
@bp.response(200, MemberSchema)
def set_share(body, username):
    """Give a member a tier and exactly these overrides; refused, naming each
    resource, when their instances would not fit or LXD refuses."""
    accounts.find_user(username)
    overrides = quotas.parse_overrides(body["overrides"])
    shares.set_quota(g.user, username, body.get("tier"), overrides)
    return present(accounts.find_user(username))


@bp.route("/members/<username>/disable", methods=["POST"])
@bp.response(200, DisabledSchema)
def disable(username):
    """Sign a member out, block sign-in and their tokens, stop their instances."""
    return {"username": username, "stopping": members.disable(g.user, username)}


@bp.route("/members/<username>/enable", methods=["POST"])
@bp.response(200, MemberSchema)
def enable(username):
    """Let a disabled member in again (instances stay stopped)."""
    members.enable(g.user, username)
    return present(accounts.find_user(username))


@bp.route("/invitations", methods=["POST"])
@bp.arguments(InvitationCreateSchema)
@bp.response(201, InvitationSchema)
def invite(body):
    """A one-time sign-up link (the invitee picks name and password)."""
    token = members.invite(g.user, body["role"], body["tier"], body["hours"])
    return {"url": url_for("auth.accept_invite", token=token, _external=True)}
