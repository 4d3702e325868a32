"""The instance console: its page and the websocket that carries it, for
the instance's owner and for admins. The checks run before the websocket
handshake, so a refusal (not signed in, someone else's instance, a page of
another site) is a plain 403 or 404 response and nothing reaches LXD."""
from flask import Blueprint, g, make_response, redirect, render_template, request, url_for
from flask_sock import Sock

from .. import console_bridge, consoles
from ..errors import Forbidden
from ..names import member_of
from ..web_security import console_policy

bp = Blueprint("console", __name__)
sock = Sock()  # routes go on bp; the extension itself needs no app


@bp.before_request
def find_instance():
    """Who may open this console: signed in, the owner or an admin; the
    socket also only from Warren's own origin."""
    socket = request.endpoint == "console.socket"
    if g.user is None:
        if socket:
            raise Forbidden("Sign in to open a console.")
        return redirect(url_for("auth.login", next=request.full_path))
    # Someone else's instance is 404 whatever the origin, as its page is.
    g.console_instance = consoles.console_instance(g.user, request.view_args["instance_id"])
    if socket:
        consoles.check_origin(request.headers.get("Origin"), request.host_url.rstrip("/"))
    return None


@bp.route("/instances/<int:instance_id>/console")
def page(instance_id):
    instance = g.console_instance
    response = make_response(render_template("member/console.html", instance=instance,
                                             owner=member_of(instance["project"]),
                                             running=consoles.offered(instance)))
    response.headers["Content-Security-Policy"] = console_policy(request.scheme, request.host)
    return response


@sock.route("/instances/<int:instance_id>/console/socket", bp=bp)
def socket(browser, instance_id):
    columns, rows = console_bridge.parse_size(request.args.get("columns"), request.args.get("rows"))
    console_bridge.serve(browser, consoles.opened(g.user, g.console_instance, columns, rows))
