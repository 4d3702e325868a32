"""Web forms (Flask-WTF: CSRF token on each, field errors kept per field)."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, Length
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


class InstanceRequestForm(FlaskForm):
    """Fields only: the instances service validates them all at once."""
    name = StringField("Name", description="Becomes the hostname and <name>.<you>.<zone>.")
    profile = SelectField("Profile", validate_choice=False)
    image = SelectField("Image", validate_choice=False)
    saved_keys = SelectMultipleField("Saved SSH keys", coerce=str, validate_choice=False,
                                     widget=ListWidget(prefix_label=False),
                                     option_widget=CheckboxInput())
    keys = TextAreaField("New SSH public keys", description="One per line, as in your .pub file.")
