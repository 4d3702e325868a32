"""The command line: creating users and resetting passwords."""
from app import accounts


def test_create_user_and_reset_password(app, runner):
    result = runner.invoke(args=["user", "create", "bob", "--role", "admin", "--password-stdin"],
                           input="a long enough password\n")
    assert result.exit_code == 0, result.output
    assert "created admin bob" in result.output
    result = runner.invoke(args=["user", "reset-password", "bob", "--password-stdin"],
                           input="another long password\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert accounts.authenticate("bob", "another long password")["role"] == "admin"


def test_create_user_errors_name_the_field(runner):
    result = runner.invoke(args=["user", "create", "Bad Name", "--password-stdin"], input="short\n")
    assert result.exit_code == 1
    assert "username:" in result.output and "password:" in result.output


def test_ensure_admin_once(app, runner):
    first = runner.invoke(args=["user", "ensure-admin"])
    assert "created admin 'admin' with password:" in first.output
    second = runner.invoke(args=["user", "ensure-admin"])
    assert "nothing to do" in second.output
    listing = runner.invoke(args=["user", "list"])
    assert "admin" in listing.output
