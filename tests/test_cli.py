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


def test_set_quota_tier_and_overrides(app, runner, make_user):
    from app import quotas
    make_user("alice")
    result = runner.invoke(args=["user", "set-quota", "alice", "--tier", "half", "memory=4GiB",
                                 "instances=3"])
    assert result.exit_code == 0, result.output
    assert "limits.instances=3" in result.output and "limits.memory=4GiB" in result.output
    assert "limits.cpu=3" in result.output and "nesting=blocked" in result.output
    with app.app_context():
        from app.store import get_db
        assert quotas.quota_for(get_db(), accounts.find_user("alice")).memory == 4 * 1024 ** 3
    bad = runner.invoke(args=["user", "set-quota", "alice", "memory=lots", "cpus=4"])
    assert bad.exit_code == 1
    assert "memory:" in bad.output and "cpus: is not a quota" in bad.output


def test_tiers_are_seeded_and_editable(app, runner):
    from app import quotas
    from app.store import get_db
    with app.app_context():
        assert quotas.tiers(get_db()) == quotas.TIERS  # the documented defaults
    listing = runner.invoke(args=["tier", "list"])
    assert "full" in listing.output and "half" in listing.output
    result = runner.invoke(args=["tier", "set", "half", "memory=4GiB", "cpu_priority=3"])
    assert result.exit_code == 0, result.output
    assert "limits.memory=4GiB" in result.output and "cpu_priority=3" in result.output
    made = runner.invoke(args=["tier", "set", "student", "instances=1"])
    assert made.exit_code == 0 and "limits.instances=1" in made.output and "limits.cpu=6" in made.output
    bad = runner.invoke(args=["tier", "set", "half", "memory=much"])
    assert bad.exit_code == 1 and "memory:" in bad.output
