"""Every member's custom domains with their states; an admin may remove one."""
from flask import flash, g, redirect, render_template, url_for

from ... import domains as service
from ...config import current_settings
from ...forms import EmptyForm
from ..guards import admin_required
from . import bp


@bp.route("/domains")
@admin_required
def domains():
    return render_template("admin/domains.html", rows=service.everything(), button=EmptyForm(),
                           resolvers=" ".join(current_settings().public_resolvers))


@bp.route("/domains/<int:domain_id>/delete", methods=["POST"])
@admin_required
def remove_domain(domain_id):
    row = service.remove_any(g.user, domain_id)
    flash(f"{row['hostname']} of {row['username']} removed; Warren no longer serves it.")
    return redirect(url_for("admin.domains"), 303)
