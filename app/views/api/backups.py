"""Backups of members' instances: list, back up now, and restore (only
with confirm: true), over the same service functions as the web pages.
Making and restoring are the worker's: 202 with the instance's backups
and progress URLs."""
from flask import g, url_for
from flask.views import MethodView

from ... import backups, restores
from . import pages, resource
from .feature_schemas import BackupAcceptedSchema, BackupSchema, RestoreSchema
from .schemas import PageArgs, page_of

bp = resource("instance_backups", "Backups of your instances.")


def shown(row: dict) -> dict:
    """A backup row as the API shows it."""
    return {**row, "age": backups.age(row["created_at"])}


def accepted(instance_id: int, backup_id: int, action: str):
    body = {"instance_id": instance_id, "backup_id": backup_id, "action": action,
            "url": url_for("instance_backups.Backups", instance_id=instance_id),
            "progress_url": url_for("instances.progress", instance_id=instance_id)}
    return body, 202, {"Location": body["progress_url"]}


@bp.route("/instances/<int:instance_id>/backups")
class Backups(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(BackupSchema))
    def get(self, args, instance_id):
        """The instance's backups, newest first: the complete ones (which
        can be restored) and any queued, running or failed."""
        rows = backups.of_instance_for(g.user, instance_id, every_state=True)
        return pages.page([shown(row) for row in rows], args)

    @bp.response(202, BackupAcceptedSchema)
    def post(self, instance_id):
        """Back up a ready instance now (when one is queued or running
        already, that one); it is made when the worker has nothing more
        urgent to do."""
        backup_id = backups.back_up_now(g.user, instance_id)
        return accepted(instance_id, backup_id, "backup")


@bp.route("/instances/<int:instance_id>/backups/<int:backup_id>/restore", methods=["POST"])
@bp.arguments(RestoreSchema)
@bp.response(202, BackupAcceptedSchema)
def restore(body, instance_id, backup_id):
    """Put the instance back to one of its complete backups: everything
    written since is lost (a running instance is stopped, replaced and
    started again). Needs confirm: true; without it, 422 says under
    fields.confirm what would be lost."""
    restores.request_restore(g.user, instance_id, backup_id, confirmed=body["confirm"])
    return accepted(instance_id, backup_id, "restore")
