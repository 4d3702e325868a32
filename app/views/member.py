"""Member pages: dashboard, instance requests, status pages and actions."""
from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for

from .. import (addresses, approvals, audit, certificates, consoles, domains, forwards, ingress,
               instances, keys, leases, maintenance, quotas, sites, sshjump, usage as usage_report)
from ..config import current_settings
from ..errors import ValidationError
from ..forms import (EmptyForm, ForwardForm, InstanceRequestForm, KeysForm, QuotaRequestForm,
                     SiteForm, show_errors)
from ..statuses import READY
from ..store import get_db
from ..profiles import current_profiles
from ..projects import usable_profiles
from ..units import format_size, show_size
from .guards import login_required

bp = Blueprint("member", __name__)


@bp.app_template_filter("size")
def size_filter(value):
    return format_size(value) if value is not None else ""


@bp.app_template_filter("measured")
def measured_filter(value):
    """A measured size (snapshots, disk in use), to two decimals when not whole MiB."""
    return show_size(value) if value is not None else ""


@bp.route("/")
@login_required
def dashboard():
    return render_template("member/dashboard.html", instances=instances.list_instances(g.user),
                           maintenance=maintenance.notices(g.user),
                           form=EmptyForm(), lease_warning=leases.warning_due,
                           ipv6_of=lambda row: addresses.ipv6_of(row, current_settings()))


def _fill_choices(form: InstanceRequestForm) -> dict:
    profiles = usable_profiles(current_profiles(), instances.member_quota(g.user))
    form.profile.choices = []
    for name, profile in sorted(profiles.items()):
        reason = instances.unavailable(profile)
        form.profile.choices.append(
            (name, f"{name} — {profile.description}" + (f" (unavailable here: {reason})" if reason else "")))
    form.image.choices = sorted({(image, image) for profile in profiles.values()
                                 for image in profile.images})
    form.saved_keys.choices = [(str(key["id"]), f"{key['fingerprint']} {key['public_key'][-40:]}")
                               for key in keys.saved_keys(g.user["id"])]
    return profiles


@bp.route("/usage")
@login_required
def usage():
    quota = instances.member_quota(g.user)
    return render_template("member/usage.html", tier=g.user["tier"], quota=quota,
                           rows=quotas.usage_table(quota, instances.usage(g.user)),
                           live=usage_report.member_usage(g.user))


@bp.route("/requests", methods=["GET", "POST"])
@login_required
def requests():
    """Ask for a larger quota; see the outcome of every request."""
    form = QuotaRequestForm()
    status = 200
    if form.validate_on_submit():
        try:
            approvals.request_quota(g.user, form.values_text(), form.reason.data)
        except ValidationError as error:
            show_errors(form, error.errors)
            status = 422
        else:
            flash("Request sent; an admin decides on it. The outcome shows here.")
            return redirect(url_for("member.requests"), 303)
    elif request.method == "POST":
        status = 400
    return render_template("member/requests.html", form=form, rows=approvals.of_member(g.user),
                           quota=instances.member_quota(g.user)), status


@bp.route("/activity")
@login_required
def activity():
    """The audit entries about the member."""
    return render_template("member/activity.html",
                           entries=audit.entries(get_db(), member_id=g.user["id"]))


@bp.route("/instances/new", methods=["GET", "POST"])
@login_required
def new_instance():
    form = InstanceRequestForm()
    profiles = _fill_choices(form)
    if request.method == "GET":
        form.saved_keys.data = [choice for choice, _ in form.saved_keys.choices]
    status = 200
    if form.validate_on_submit():
        try:
            instance = instances.request_instance(g.user, form.name.data, form.profile.data,
                                                  form.image.data, form.keys.data,
                                                  form.saved_keys.data)
        except ValidationError as error:
            for field_name, messages in error.errors.items():
                getattr(form, field_name).errors = list(messages)
            status = 422
        else:
            return redirect(url_for("member.instance", instance_id=instance["id"]), 303)
    elif request.method == "POST":
        status = 400
    return render_template("member/new.html", form=form, profiles=profiles), status


def _instance_page(instance_id, forward_form=None, status=200, site_form=None):
    row = instances.get_instance(g.user, instance_id)
    settings = current_settings()
    site = sites.of_instance(get_db(), row["id"])
    if site_form is None:
        site_form = SiteForm(formdata=None, data={"mode": site["mode"], "port": site["port"]}
                             if site else None)
    return render_template("member/instance.html", instance=row,
                           ipv6=addresses.ipv6_of(row, settings),
                           ssh_snippet=sshjump.config_snippet(row, settings)
                           if row["status"] == READY and row["ipv4"] else None,
                           forwards=forwards.of_instance(get_db(), row["id"]),
                           domains=domains.of_instance(g.user, row["id"]),
                           public_address=forwards.public_address(settings),
                           forward_form=forward_form or ForwardForm(formdata=None),
                           site=site, site_form=site_form,
                           ingress_address=ingress.public_address(settings),
                           acme=certificates.enabled(settings),
                           events=instances.events(g.user, instance_id), form=EmptyForm(),
                           console=consoles.offered(row)), status


@bp.route("/instances/<int:instance_id>")
@login_required
def instance(instance_id):
    return _instance_page(instance_id)


@bp.route("/instances/<int:instance_id>/forwards", methods=["POST"])
@login_required
def add_forward(instance_id):
    form = ForwardForm()
    if not form.validate_on_submit():
        return _instance_page(instance_id, form, 400)
    try:
        row = forwards.add(g.user, instance_id, form.protocol.data, form.instance_port.data,
                           form.public_port.data)
    except ValidationError as error:
        show_errors(form, error.errors)
        return _instance_page(instance_id, form, 422)
    flash(f"Port {row['public_port']}/{row['protocol']} now forwards to port "
          f"{row['instance_port']}; it answers within seconds.")
    return redirect(url_for("member.instance", instance_id=instance_id), 303)


@bp.route("/instances/<int:instance_id>/forwards/<int:forward_id>/delete", methods=["POST"])
@login_required
def remove_forward(instance_id, forward_id):
    row = forwards.remove(g.user, instance_id, forward_id)
    flash(f"Port {row['public_port']}/{row['protocol']} is no longer forwarded.")
    return redirect(url_for("member.instance", instance_id=instance_id), 303)


@bp.route("/instances/<int:instance_id>/site", methods=["POST"])
@login_required
def publish_site(instance_id):
    form = SiteForm()
    if not form.validate_on_submit():
        return _instance_page(instance_id, status=400, site_form=form)
    try:
        site = sites.publish(g.user, instance_id, form.mode.data, form.port.data)
    except ValidationError as error:
        show_errors(form, error.errors)
        return _instance_page(instance_id, status=422, site_form=form)
    flash(f"Publishing {site['url']} ({site['mode']}); it answers within seconds.")
    return redirect(url_for("member.instance", instance_id=instance_id), 303)


@bp.route("/instances/<int:instance_id>/site/delete", methods=["POST"])
@login_required
def unpublish_site(instance_id):
    site = sites.unpublish(g.user, instance_id)
    flash(f"{site['url']} is no longer published.")
    return redirect(url_for("member.instance", instance_id=instance_id), 303)


@bp.route("/instances/<int:instance_id>/progress")
@login_required
def progress(instance_id):
    row = instances.get_instance(g.user, instance_id)
    return jsonify(status=row["status"], error=row["error"], ipv4=row["ipv4"],
                   ipv6=addresses.ipv6_of(row, current_settings()), fqdn=row["fqdn"],
                   events=[{"at": event["at"], "step": event["step"], "message": event["message"]}
                           for event in instances.events(g.user, instance_id)])


@bp.route("/instances/<int:instance_id>/renew", methods=["POST"])
@login_required
def renew(instance_id):
    end = leases.renew(g.user, instance_id)
    flash(f"Lease renewed until {end[:16].replace('T', ' ')} UTC.")
    return redirect(url_for("member.dashboard"), 303)


@bp.route("/instances/<int:instance_id>/<action>", methods=["POST"])
@login_required
def act(instance_id, action):
    waits = instances.request_action(g.user, instance_id, action)
    if action == "delete":
        flash(waits or "Deletion queued.")
        return redirect(url_for("member.dashboard"), 303)
    flash(waits or f"{action.capitalize()} queued.")
    return redirect(url_for("member.instance", instance_id=instance_id), 303)


@bp.route("/keys", methods=["GET", "POST"])
@login_required
def keys_page():
    """The member's saved SSH keys: the jump server accepts these."""
    form, status = KeysForm(), 200
    if form.validate_on_submit():
        try:
            added = keys.add_keys(g.user, form.keys.data)
        except ValidationError as error:
            show_errors(form, error.errors)
            status = 422
        else:
            flash(f"{added} key(s) saved.")
            return redirect(url_for("member.keys_page"), 303)
    elif request.method == "POST":
        status = 400
    return render_template("member/keys.html", form=form, rows=keys.saved_keys(g.user["id"]),
                           delete_form=EmptyForm(), jump=sshjump.jump_host(current_settings())), status


@bp.route("/keys/<int:key_id>/delete", methods=["POST"])
@login_required
def delete_key(key_id):
    removed = keys.remove_key(g.user, key_id)
    flash(f"Key {removed['fingerprint']} removed; the jump server refuses it from now on.")
    return redirect(url_for("member.keys_page"), 303)
