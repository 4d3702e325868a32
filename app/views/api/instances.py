"""Members' instances: list, request (202 with a progress URL, an
Idempotency-Key makes retries safe), show, progress, power actions,
delete, lease renewal."""
import json

from flask import g, jsonify, request, url_for
from flask.views import MethodView

from ... import addresses, idempotency, instances, jobs, leases, sshjump
from ...config import current_settings
from ...profiles import current_profiles
from ...projects import usable_profiles
from ...statuses import READY
from . import pages, resource
from .schemas import (AcceptedSchema, InstanceCreateSchema, InstanceSchema, LeaseSchema,
                      OfferedProfileSchema, PageArgs, ProgressSchema, page_of)

bp = resource("instances", "Your instances.")


def present(row: dict) -> dict:
    """An instance as the API shows it."""
    return present_all([row])[0]


def present_all(rows: list[dict]) -> list[dict]:
    """Instances as the API shows them (what is the same for every row is
    worked out once: url_for for each row cost as much as reading the page)."""
    settings = current_settings()
    jump = sshjump.jump_host(settings)
    url, progress_url = _url_maker("instances.Instance"), _url_maker("instances.progress")
    return [{**row, "ipv6": addresses.ipv6_of(row, settings), "url": url(row["id"]),
             "progress_url": progress_url(row["id"]),
             "ssh": {"host": row["fqdn"], "address": row["ipv4"], "user": "root", "jump": jump}
             if row["status"] == READY and row["ipv4"] else None}
            for row in rows]


LISTED = tuple(InstanceSchema().fields)


def listed(items: list[dict]) -> list[dict]:
    """What InstanceSchema(many=True).dump gives for presented rows (their
    values already have the schema's types), without marshmallow's work per
    field: a third of a list request's time. tests/test_api.py holds the
    two equal; the schema still documents the list."""
    return [{key: item[key] for key in LISTED if key in item} for item in items]


def _url_maker(endpoint: str):
    """url_for(endpoint, instance_id=...) as a function of the id, routed once."""
    marker = "9" * 19  # a number no id route holds elsewhere in its path
    prefix, _, suffix = url_for(endpoint, instance_id=int(marker)).partition(marker)
    return lambda instance_id: f"{prefix}{instance_id}{suffix}"


def accepted(instance_id: int, action: str, status: str, waits: str | None = None):
    progress = url_for("instances.progress", instance_id=instance_id)
    body = {"id": instance_id, "action": action, "status": status, "progress_url": progress}
    return ({**body, "waits": waits} if waits else body), 202, {"Location": progress}


@bp.route("/instances")
class Instances(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(InstanceSchema))
    def get(self, args):
        """Your instances, by name, with LXD's live state."""
        result = pages.page_from(lambda limit, offset: instances.list_instances(g.user, limit, offset),
                                 args)
        return jsonify({**result, "items": listed(present_all(result["items"]))})

    @bp.arguments(InstanceCreateSchema)
    @bp.response(202, InstanceSchema)
    @bp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "required": False,
                         "schema": {"type": "string", "maxLength": idempotency.MAX_KEY},
                         "description": "Retrying with the same key and body answers again "
                                        "instead of making a second instance."}])
    def post(self, body):
        """Request an instance: validated and reserved at once, built by the
        worker; follow progress_url."""
        print_ = idempotency.fingerprint("POST", request.path, json.dumps(body, sort_keys=True).encode())
        with idempotency.once(g.user, request.headers.get("Idempotency-Key"), print_) as outcome:
            if not outcome.replayed:
                row = instances.request_instance(g.user, body.get("name"), body.get("profile"),
                                                 body.get("image"), body["keys"],
                                                 body["saved_key_ids"])
                row["state"] = "-"
                outcome.status, outcome.body = 202, InstanceSchema().dump(present(row))
                outcome.location = outcome.body["url"]
        return outcome.body, outcome.status, {"Location": outcome.location}


@bp.route("/instances/<int:instance_id>")
class Instance(MethodView):
    @bp.response(200, InstanceSchema)
    def get(self, instance_id):
        """One of your instances."""
        row = instances.get_instance(g.user, instance_id)  # 404 for anyone else's
        return present(instances.with_live_state(g.user, [row])[0])

    @bp.response(202, AcceptedSchema)
    def delete(self, instance_id):
        """Delete an instance with its DNS name; follow progress_url until 404."""
        waits = instances.request_action(g.user, instance_id, "delete")
        return accepted(instance_id, "delete", instances.get_instance(g.user, instance_id)["status"], waits)


@bp.route("/instances/<int:instance_id>/progress")
@bp.response(200, ProgressSchema)
def progress(instance_id):
    """The instance's status and its history of steps."""
    row = instances.get_instance(g.user, instance_id)
    return {**row, "ipv6": addresses.ipv6_of(row, current_settings()),
            "events": instances.events(g.user, instance_id)}


def _power(action: str):
    def view(instance_id):
        waits = instances.request_action(g.user, instance_id, action)
        return accepted(instance_id, action, instances.get_instance(g.user, instance_id)["status"], waits)
    view.__name__ = action
    view.__doc__ = f"Queue a {action} of a ready instance; follow progress_url."
    bp.route(f"/instances/<int:instance_id>/{action}", methods=["POST"])(
        bp.response(202, AcceptedSchema)(view))


for _action in jobs.POWER:
    _power(_action)


@bp.route("/instances/<int:instance_id>/renew", methods=["POST"])
@bp.response(200, LeaseSchema)
def renew(instance_id):
    """Renew a leased instance's lease (a stopped one starts again)."""
    return {"id": instance_id, "lease_expires_at": leases.renew(g.user, instance_id)}


@bp.route("/profiles")
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_of(OfferedProfileSchema))
def profiles(args):
    """The profiles you may request, with their images."""
    offered = usable_profiles(current_profiles(), instances.member_quota(g.user))
    return pages.page([{"name": name, "description": profile.description,
                        "instance_type": profile.instance_type, "images": list(profile.images),
                        "lease_hours": profile.lease_hours, "approval": profile.approval,
                        "unavailable": instances.unavailable(profile)}
                       for name, profile in sorted(offered.items())], args)
