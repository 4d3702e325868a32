"""Accounts service: validation, hashing, authentication, passwords."""
import pytest

from app import accounts
from app.errors import AuthenticationFailed, Conflict, ValidationError
from app.store import get_db


def test_create_user_reports_every_bad_field_at_once(app):
    with app.app_context(), pytest.raises(ValidationError) as caught:
        accounts.create_user("Bad Name", "short", "root")
    assert set(caught.value.errors) == {"username", "password", "role"}


@pytest.mark.parametrize("name", ["a", "-alice", "alice-", "al--ice", "Alice", "al_ice", "1alice",
                                  "a" * 33])
def test_user_names_must_be_dns_labels(app, name):
    with app.app_context(), pytest.raises(ValidationError):
        accounts.create_user(name, "long enough password")


def test_duplicate_user_name_conflicts(app, make_user):
    make_user("alice")
    with app.app_context(), pytest.raises(Conflict):
        accounts.create_user("alice", "another long password")


def test_password_is_stored_as_argon2id(app, make_user):
    user = make_user("alice")
    with app.app_context():
        stored = get_db()["users"].get(user["id"])["password_hash"]
    assert stored.startswith("$argon2id$")
    assert "password_hash" not in user


def test_authenticate(app, make_user):
    make_user("alice", password="the right password")
    with app.app_context():
        assert accounts.authenticate("alice", "the right password")["username"] == "alice"
        for name, password in (("alice", "the wrong password"), ("nobody", "the right password")):
            with pytest.raises(AuthenticationFailed):
                accounts.authenticate(name, password)


def test_disabled_account_cannot_authenticate(app, make_user):
    user = make_user("alice", password="the right password")
    with app.app_context():
        get_db()["users"].update(user["id"], {"disabled": 1})
        with pytest.raises(AuthenticationFailed):
            accounts.authenticate("alice", "the right password")


def test_ensure_admin_generates_a_password_once(app):
    with app.app_context():
        generated = accounts.ensure_admin("root-admin")
        assert generated and len(generated) >= 16
        assert accounts.authenticate("root-admin", generated)["role"] == "admin"
        assert accounts.ensure_admin("root-admin") is None


def test_set_password_validates_and_revokes_sessions(app, make_user):
    user = make_user("alice")
    with app.app_context():
        db = get_db()
        db["sessions"].insert({"id_hash": "h", "user_id": user["id"], "data": "{}",
                               "created_at": "x", "expires_at": "9999"})
        with pytest.raises(ValidationError):
            accounts.set_password(user["id"], "short")
        assert db["sessions"].count == 1
        accounts.set_password(user["id"], "a new long password")
        assert db["sessions"].count == 0
        assert accounts.authenticate("alice", "a new long password")
