"""Web forms (Flask-WTF: CSRF token on each, field errors kept per field)."""
from flask_wtf import FlaskForm
from wtforms import (BooleanField, HiddenField, IntegerField, PasswordField, SelectField,
                     SelectMultipleField, StringField, TextAreaField)
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange
from wtforms.widgets import CheckboxInput, ListWidget


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    password = PasswordField("New password", validators=[DataRequired()])
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(), EqualTo("password", "The two entries differ.")])


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for POST-only buttons."""


class KeysForm(FlaskForm):
    """SSH public keys to save, one per line."""
    keys = TextAreaField("SSH public keys", description="One per line, as in ~/.ssh/id_ed25519.pub.")


class ForwardForm(FlaskForm):
    """Fields only: the forwards service validates them all at once."""
    protocol = SelectField("Protocol", choices=["tcp", "udp"], validate_choice=False)
    instance_port = StringField("Instance port", description="The port your service listens on.")
    public_port = StringField("Public port", description="Leave empty for the first free one.")


class SnapshotForm(FlaskForm):
    """Fields only: the snapshots service validates the name."""
    name = StringField("Name", description="Optional: letters, digits, '.', '-', '_'. Empty: "
                       "Warren names it after the date and time.")


class RestoreForm(FlaskForm):
    confirm = BooleanField("I accept what this restore loses")


class SiteForm(FlaskForm):
    """Fields only: the sites service validates them all at once."""
    mode = SelectField("Mode", choices=["terminate", "passthrough"], validate_choice=False,
                       description="terminate: the co-op's proxy holds the certificate and your "
                                   "server speaks plain HTTP; passthrough: your server on port "
                                   "443 holds its own certificate.")
    port = StringField("HTTP port", default="80",
                       description="The port your web server listens on (terminate mode).")


class RecordForm(FlaskForm):
    """Fields only: the records service validates them all at once."""
    name = StringField("Name", description="Below your subtree: blog, _dmarc.web, or web itself "
                                           "for MX, TXT, CAA and SRV.")
    rtype = SelectField("Type", choices=["CNAME", "TXT", "MX", "AAAA", "SRV", "CAA"],
                        validate_choice=False)
    value = StringField("Value", description="Names are taken as absolute: web.example.org.")
    ttl = StringField("TTL (seconds)", description="Empty: the zone's default.")


class AcmeKeyForm(FlaskForm):
    acme_name = StringField("Name the certificate is for",
                            description="web for web.<you>.<zone>; certbot may then set TXT "
                                        "records at _acme-challenge.web.<you>.<zone> only.")


class DomainForm(FlaskForm):
    """Fields only: the domains service validates them all at once."""
    hostname = StringField("Host name", description="Your own name, like www.example.org.")
    instance = SelectField("Instance", validate_choice=False)


class DomainMoveForm(FlaskForm):
    instance = SelectField("Move to", validate_choice=False)


class InstanceRequestForm(FlaskForm):
    """Fields only: the instances service validates them all at once."""
    name = StringField("Name", description="Becomes the hostname and <name>.<you>.<zone>.")
    profile = SelectField("Profile", validate_choice=False)
    image = SelectField("Image", validate_choice=False)
    saved_keys = SelectMultipleField("Saved SSH keys", coerce=str, validate_choice=False,
                                     widget=ListWidget(prefix_label=False),
                                     option_widget=CheckboxInput())
    keys = TextAreaField("New SSH public keys", description="One per line, as in your .pub file.")


# Admin forms: fields only; the services validate the values and report
# every problem at once (the views put them next to the fields).

class MemberCreateForm(FlaskForm):
    username = StringField("User name", description="Becomes part of DNS names: web.<name>.<zone>.")
    password = PasswordField("Initial password", description="At least 10 characters; hand it over "
                                                            "and ask them to change it.")
    role = SelectField("Role", choices=["member", "admin"])
    tier = SelectField("Share tier", validate_choice=False)


class InviteForm(FlaskForm):
    role = SelectField("Role", choices=["member", "admin"])
    tier = SelectField("Share tier", validate_choice=False)
    hours = IntegerField("Valid for (hours)", default=72,
                         validators=[NumberRange(1, 24 * 30, "From 1 hour to 30 days.")])


class SignUpForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)],
                           description="Lower-case letters, digits and hyphens; part of your DNS names.")
    password = PasswordField("Password", validators=[DataRequired()])
    confirm = PasswordField("Repeat the password",
                            validators=[DataRequired(), EqualTo("password", "The two entries differ.")])


class EventForm(FlaskForm):
    name = StringField("Event name", description="A DNS label: team accounts are named NAME-TEAM.")
    title = StringField("Title", validators=[Length(max=200)])
    teams = TextAreaField("Teams", description="A number (35: teams t01 to t35), or one team per "
                          "line: team, or team,account (a CSV of team names to account names).")
    machines = TextAreaField("Machines per team", description="One per line: name profile image, "
                             "e.g. web small debian-12.")
    starts_at = StringField("Starts (UTC)", description="YYYY-MM-DD HH:MM")
    ends_at = StringField("Ends (UTC)", description="YYYY-MM-DD HH:MM")
    build_hours = IntegerField("Build this many hours before the start", default=12)
    grace_hours = IntegerField("Keep the stopped machines this many hours after the end", default=24)
    keep = SelectField("Before removal", choices=["backup", "none"],
                       description="backup: every machine is backed up, then removed; none: removed "
                                   "without a backup.")
    keys = TextAreaField("SSH public keys for every machine", description="The organisers' keys; "
                         "teams use the browser console, or add their own keys inside.")


class TeamClaimForm(FlaskForm):
    password = PasswordField("Team password", validators=[DataRequired()],
                             description="At least 10 characters; share it with your team.")
    confirm = PasswordField("Repeat the password",
                            validators=[DataRequired(), EqualTo("password", "The two entries differ.")])


QUOTA_FIELDS = ("instances", "cpu", "memory", "disk", "processes", "cpu_priority", "nesting",
                "forwards", "records", "domains", "snapshots")


class QuotaValuesForm(FlaskForm):
    """Quota values as text; an empty field means 'as the tier says'."""
    instances = StringField("Instances")
    cpu = StringField("CPUs")
    memory = StringField("Memory", description="e.g. 8GiB")
    disk = StringField("Disk", description="Root disks and snapshots, e.g. 40GiB")
    processes = StringField("Processes")
    cpu_priority = StringField("CPU priority cap", description="0-10")
    nesting = StringField("Nesting", description="true or false")
    forwards = StringField("Port forwards")
    records = StringField("DNS records", description="Records and ACME keys together")
    domains = StringField("Custom domains")
    snapshots = StringField("Manual snapshots")

    def values_text(self) -> dict[str, str]:
        """The fields that were filled in."""
        return {name: getattr(self, name).data.strip() for name in QUOTA_FIELDS
                if (getattr(self, name).data or "").strip()}


class QuotaForm(QuotaValuesForm):
    """A member's tier plus their overrides."""
    tier = SelectField("Share tier", validate_choice=False)


class QuotaRequestForm(QuotaValuesForm):
    """A member asking for more: the values they need and why."""
    reason = TextAreaField("What it is for")


class DeleteMemberForm(FlaskForm):
    confirmation = StringField("Type the user name to confirm")


class ProfileForm(FlaskForm):
    name = StringField("Name", description="The file becomes profiles/<name>.yaml.")
    text = TextAreaField("Profile (YAML)")
    reviewed = HiddenField()


class DecisionForm(FlaskForm):
    reason = TextAreaField("Reason", description="Shown to the member; required to deny.")


def show_errors(form, errors: dict[str, list[str]], rest=None) -> None:
    """Put a service's field errors next to the form's fields; the others
    go to the `rest` field (with their name), or to the top of the form."""
    for name, messages in errors.items():
        field = form._fields.get(name) if name != "csrf_token" else None
        if field is not None:
            field.errors = list(field.errors) + list(messages)
        elif rest is not None:
            rest.errors = list(rest.errors) + [f"{name}: {message}" for message in messages]
        else:
            form.form_errors.extend(f"{name}: {message}" if name != "form" else message
                                    for message in messages)


class TokenForm(FlaskForm):
    """Fields only: the tokens service validates them all at once."""
    name = StringField("Name", description="What it is for, e.g. laptop or ci-deploy.")
    scope = SelectField("Scope", validate_choice=False,
                        description="read: look only; member: everything you do here; "
                                    "admin: also what an admin does.")
    days = StringField("Valid for (days)", default="90")
