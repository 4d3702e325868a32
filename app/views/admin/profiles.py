"""Admin pages for profiles: list, create, edit (review first, then save),
delete."""
from flask import flash, g, redirect, render_template, request, url_for

from ... import instances, profile_changes
from ...errors import Conflict, NotFound, ValidationError
from ...forms import EmptyForm, ProfileForm, show_errors
from ...profiles import current_profiles, profile_set
from ..guards import admin_required
from . import bp

TEMPLATE = """description: What this profile is for, in one line
instance_type: container
images: [debian-12]
limits:
  cpu: 1
  memory: 512MiB
  disk: 4GiB
  processes: 500
  cpu_allowance: 50ms/100ms
  cpu_priority: 5
"""


@bp.route("/profiles")
@admin_required
def profiles():
    profiles = current_profiles()
    return render_template("admin/profiles.html", profiles=profiles,
                           users={name: profile_changes.using(name) for name in profiles},
                           unavailable={name: instances.unavailable(profile)
                                        for name, profile in profiles.items()})


def _edit(name: str | None):
    """Shared by create and edit: the first POST reviews, the second saves."""
    creating = name is None
    form = ProfileForm()
    if request.method == "GET":
        form.name.data = name or ""
        form.text.data = TEMPLATE if creating else profile_set().text(name)
        return render_template("admin/profile.html", form=form, creating=creating, review=None,
                               delete_form=EmptyForm(), users=[] if creating else
                               profile_changes.using(name))
    name = (form.name.data or "").strip() if creating else name
    form.name.data = name
    # Browsers send a textarea's lines with CRLF; files keep LF.
    text = (form.text.data or "").replace("\r\n", "\n")
    review, status = None, 200
    try:
        if (form.reviewed.data or "").replace("\r\n", "\n") == text:  # reviewed exactly this text
            profile_changes.save(g.user, name, text, creating)
            flash(f"Saved profiles/{name}.yaml; every member project has the new version.")
            return redirect(url_for("admin.profiles"), 303)
        review = profile_changes.review(name, text, creating)
        form.reviewed.data = text
    except ValidationError as error:
        show_errors(form, error.errors, rest=form.text)
        form.reviewed.data = ""
        status = 422
    except Conflict as error:
        form.form_errors.append(str(error))
        form.reviewed.data = ""
        status = 409
    return render_template("admin/profile.html", form=form, creating=creating, review=review,
                           delete_form=EmptyForm(), users=[]), status


@bp.route("/profiles/new", methods=["GET", "POST"])
@admin_required
def new_profile():
    return _edit(None)


@bp.route("/profiles/<name>", methods=["GET", "POST"])
@admin_required
def profile(name):
    if name not in current_profiles():
        raise NotFound(f"No profile named {name}.")
    return _edit(name)


@bp.route("/profiles/<name>/delete", methods=["POST"])
@admin_required
def delete_profile(name):
    profile_changes.delete(g.user, name)
    flash(f"Deleted profiles/{name}.yaml and its copy in every member project.")
    return redirect(url_for("admin.profiles"), 303)
