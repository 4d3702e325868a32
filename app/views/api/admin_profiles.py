"""Admins: profiles. Read one (with its ETag), review a change, save it
(If-Match: the ETag read, so two admins cannot overwrite each other),
create, delete."""
from flask import g, request, url_for
from flask.views import MethodView

from ... import instances, profile_changes
from ...errors import NotFound, PreconditionRequired
from ...profiles import current_profiles, profile_set
from . import pages, resource
from .schemas import (PageArgs, ProfileCreateSchema, ProfileDetailSchema, ProfileSchema,
                      ProfileTextSchema, ReviewSchema, page_of)

bp = resource("admin_profiles", "Admins: profiles.", admin=True)
IF_MATCH = {"in": "header", "name": "If-Match", "required": True, "schema": {"type": "string"},
            "description": "The ETag of the version you read (GET), or * to overwrite any."}


def present(name: str, profile) -> dict:
    return {"name": name, "description": profile.description,
            "instance_type": profile.instance_type, "images": list(profile.images),
            "in_use": len(profile_changes.using(name)), "unavailable": instances.unavailable(profile)}


def _existing(name: str):
    profile = current_profiles().get(name)
    if profile is None:
        raise NotFound(f"No profile named {name}.")
    return profile


def detail(name: str):
    text = profile_set().text(name)
    etag = profile_changes.version(text)
    return ({**present(name, _existing(name)), "text": text, "etag": etag}, 200, {"ETag": etag})


def present_review(result) -> dict:
    return {"name": result.profile.name, "created": result.created,
            "changes": [{"key": key, "old": old, "new": new} for key, old, new in result.changes],
            "affected": [row["fqdn"] for row in result.affected], "problems": result.problems,
            "notes": result.notes}


@bp.route("/profiles")
class Profiles(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(ProfileSchema))
    def get(self, args):
        """Every profile, with how many instances use it."""
        return pages.page([present(name, profile)
                           for name, profile in sorted(current_profiles().items())], args)

    @bp.arguments(ProfileCreateSchema)
    @bp.response(201, ProfileDetailSchema)
    def post(self, body):
        """Create a profile from its YAML."""
        profile_changes.save(g.user, body["name"].strip(), body["text"], creating=True)
        body, status, headers = detail(body["name"].strip())
        return body, 201, {**headers, "Location": url_for("admin_profiles.Profile", name=body["name"])}


@bp.route("/profiles/<name>")
class Profile(MethodView):
    @bp.response(200, ProfileDetailSchema)
    def get(self, name):
        """A profile with its YAML and its ETag."""
        _existing(name)
        return detail(name)

    @bp.arguments(ProfileTextSchema)
    @bp.response(200, ProfileDetailSchema)
    @bp.doc(parameters=[IF_MATCH])
    def put(self, body, name):
        """Save a profile's new YAML (review it first); refused when anyone
        would go over quota, 412 when it changed since you read it."""
        _existing(name)
        header = request.headers.get("If-Match")
        if not header:
            raise PreconditionRequired("Send If-Match with the ETag you read (GET the profile).")
        tags = [tag.strip() for tag in header.split(",")]
        profile_changes.save(g.user, name, body["text"], creating=False, if_match=tags)
        return detail(name)

    @bp.response(204)
    def delete(self, name):
        """Delete a profile nobody uses."""
        profile_changes.delete(g.user, name)
        return None


@bp.route("/profiles/<name>/review", methods=["POST"])
@bp.arguments(ProfileTextSchema)
@bp.response(200, ReviewSchema)
def review(body, name):
    """What saving this YAML would change, which instances follow, and why
    it would be refused (problems). Name a new profile to review a create."""
    return present_review(profile_changes.review(name, body["text"],
                                                 creating=current_profiles().get(name) is None))
