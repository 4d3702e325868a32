"""Members' saved SSH keys (the jump host accepts these)."""
from flask import g
from flask.views import MethodView

from ... import keys
from . import pages, resource
from .schemas import KeySchema, KeysAddedSchema, KeysCreateSchema, PageArgs, page_of

bp = resource("keys", "Your saved SSH keys.")


@bp.route("/keys")
class Keys(MethodView):
    @bp.arguments(PageArgs, location="query")
    @bp.response(200, page_of(KeySchema))
    def get(self, args):
        """Your saved keys, oldest first."""
        return pages.page(keys.saved_keys(g.user["id"]), args)

    @bp.arguments(KeysCreateSchema)
    @bp.response(201, KeysAddedSchema)
    def post(self, body):
        """Save public keys (one per line); every bad line is reported."""
        return {"added": keys.add_keys(g.user, body["keys"])}


@bp.route("/keys/<int:key_id>", methods=["DELETE"])
@bp.response(200, KeySchema)
def delete_key(key_id):
    """Forget a key; the jump host refuses it from now on."""
    return keys.remove_key(g.user, key_id)
