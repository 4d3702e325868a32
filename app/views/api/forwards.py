"""Port forwards of members' instances: list, add, remove. A forward is
saved at once (201) and in LXD within seconds (the instance's progress
tells when)."""
from flask import g
from flask.views import MethodView

from ... import forwards, instances
from ...config import current_settings
from ...store import get_db
from . import pages, resource
from .feature_schemas import ForwardCreateSchema, ForwardSchema
from .schemas import PageArgs, page_of

bp = resource("forwards", "Ports of the co-op's public address forwarded to your instances.")


def present(row: dict) -> dict:
    return {**row, "address": forwards.public_address(current_settings())}


@bp.route("/instances/<int:instance_id>/forwards")
class Forwards(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(ForwardSchema))
    def get(self, args, instance_id):
        """The instance's forwards, by protocol and public port."""
        row = instances.get_instance(g.user, instance_id)  # 404 for anyone else's
        return pages.page([present(item) for item in forwards.of_instance(get_db(), row["id"])], args)

    @bp.arguments(ForwardCreateSchema)
    @bp.response(201, ForwardSchema)
    def post(self, body, instance_id):
        """Forward a public port (the one given, or the first free one) to a
        port of a ready instance, within your share's count of forwards."""
        return present(forwards.add(g.user, instance_id, body["protocol"], body.get("instance_port"),
                                    body.get("public_port")))


@bp.route("/instances/<int:instance_id>/forwards/<int:forward_id>", methods=["DELETE"])
@bp.response(200, ForwardSchema)
def remove_forward(instance_id, forward_id):
    """Stop forwarding a port; the removed forward."""
    return present(forwards.remove(g.user, instance_id, forward_id))
