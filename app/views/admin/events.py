"""The admin's events pages: create an event (every error of the form at
once), follow its build (ready, building, failed and why), retry failures,
end it early."""
from flask import flash, g, redirect, render_template, request, url_for

from ... import events
from ...errors import ValidationError
from ...forms import EmptyForm, EventForm, show_errors
from ...store import get_db
from ..guards import admin_required
from . import bp


@bp.route("/events", methods=["GET", "POST"])
@admin_required
def events_page():
    form = EventForm()
    status, links = 200, None
    if request.method == "POST" and form.validate_on_submit():
        try:
            event, tokens = events.create_event(
                g.user, form.name.data, form.teams.data, form.machines.data, form.starts_at.data,
                form.ends_at.data, form.keys.data, title=form.title.data,
                build_hours=form.build_hours.data, grace_hours=form.grace_hours.data,
                keep=form.keep.data)
        except ValidationError as error:
            show_errors(form, error.errors)
            status = 422
        else:
            links = {team: url_for("auth.claim_team", token=token, _external=True)
                     for team, token in tokens.items()}
            flash(f"Event {event['name']} created with {len(links)} teams.")
            return render_template("admin/event_links.html", event=event, links=links), 201
    elif request.method == "POST":
        status = 400
    rows = [{**event, "progress": events.progress(event)} for event in events.all_events()]
    return render_template("admin/events.html", form=form, rows=rows), status


@bp.route("/events/<name>")
@admin_required
def event_page(name):
    event = events.find(name)
    return render_template("admin/event.html", event=event, progress=events.progress(event),
                           teams=events.teams_of(get_db(), event), button=EmptyForm())


@bp.route("/events/<name>/retry", methods=["POST"])
@admin_required
def event_retry(name):
    count = events.retry_failed(g.user, events.find(name)["id"])
    flash(f"{count} failed machine(s) will be built again.")
    return redirect(url_for("admin.event_page", name=name), 303)


@bp.route("/events/<name>/end", methods=["POST"])
@admin_required
def event_end(name):
    events.end_now(g.user, events.find(name)["id"])
    flash(f"The event {name} ends now: its machines stop on the worker's next pass.")
    return redirect(url_for("admin.event_page", name=name), 303)
