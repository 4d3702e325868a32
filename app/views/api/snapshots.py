"""Snapshots of members' instances: list, take (named or automatic),
show (with what a restore loses), restore (only with confirm: true) and
delete. Taking, restoring and deleting are the worker's: 202 with the
snapshot's URL (its action is null once done) and the instance's progress."""
from flask import g, url_for
from flask.views import MethodView

from ... import snapshots
from ...errors import BackendUnavailable
from . import pages, resource
from .feature_schemas import (RestoreSchema, SnapshotAcceptedSchema, SnapshotCreateSchema,
                              SnapshotDetailSchema, SnapshotSchema)
from .schemas import PageArgs, page_of

bp = resource("instance_snapshots", "Snapshots of your instances.")


def _url(instance_id: int, name: str) -> str:
    return url_for("instance_snapshots.Snapshot", instance_id=instance_id, snapshot=name)


def accepted(instance_id: int, name: str, action: str, **extra):
    body = {"instance_id": instance_id, "name": name, "action": action,
            "url": _url(instance_id, name),
            "progress_url": url_for("instances.progress", instance_id=instance_id), **extra}
    return body, 202, {"Location": body["url"]}


@bp.route("/instances/<int:instance_id>/snapshots")
class Snapshots(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(SnapshotSchema))
    def get(self, args, instance_id):
        """The instance's snapshots, oldest first: yours and the profile's
        scheduled ones, with their sizes and any action still pending."""
        instance, listed, error = snapshots.snapshots_of(g.user, instance_id)
        if error:
            raise BackendUnavailable(f"LXD did not answer, try again: {error}")
        return pages.page([{**item, "url": _url(instance["id"], item["name"])} for item in listed],
                          args)

    @bp.arguments(SnapshotCreateSchema)
    @bp.response(202, SnapshotAcceptedSchema)
    def post(self, body, instance_id):
        """Take a snapshot of a ready instance (within your manual snapshot
        cap and disk quota, snapshots included)."""
        row = snapshots.take(g.user, instance_id, body["name"])
        return accepted(row["instance_id"], row["name"], "take")


@bp.route("/instances/<int:instance_id>/snapshots/<snapshot>")
class Snapshot(MethodView):
    @bp.response(200, SnapshotDetailSchema)
    def get(self, instance_id, snapshot):
        """One snapshot, with what restoring it would lose."""
        instance, found, warnings, _must_confirm = snapshots.restore_plan(g.user, instance_id, snapshot)
        return {**found, "url": _url(instance["id"], found["name"]), "restore_warnings": warnings}

    @bp.response(202, SnapshotAcceptedSchema)
    def delete(self, instance_id, snapshot):
        """Delete a snapshot; its URL answers 404 once it is gone."""
        snapshots.remove(g.user, instance_id, snapshot)
        return accepted(instance_id, snapshot, "delete")


@bp.route("/instances/<int:instance_id>/snapshots/<snapshot>/restore", methods=["POST"])
@bp.arguments(RestoreSchema)
@bp.response(202, SnapshotAcceptedSchema)
def restore(body, instance_id, snapshot):
    """Restore the instance to a snapshot: its disk and settings go back
    (a running instance is stopped and started again). Needs confirm: true;
    without it, 422 says under fields.confirm everything that would be lost."""
    warnings = snapshots.restore(g.user, instance_id, snapshot, body["confirm"], always_confirm=True)
    return accepted(instance_id, snapshot, "restore", warnings=warnings)
