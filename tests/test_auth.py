"""Login, logout, sessions and CSRF through the real forms."""
import pytest

from support import PASSWORD, csrf_token


def session_cookie(client):
    cookie = client.get_cookie("warren_session")
    return cookie.value if cookie else None


def test_pages_need_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_login_and_logout(client, auth, make_user):
    make_user("alice")
    response = auth.login()
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "My instances" in page and "alice" in page
    assert auth.logout().status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_with_one_vague_message(client, auth, make_user):
    make_user("alice")
    for username, password in (("alice", "not the password"), ("mallory", PASSWORD)):
        response = auth.login(username, password)
        assert response.status_code == 401
        assert "Wrong user name or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_empty_fields_are_reported_next_to_the_fields(client):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "alice", "password": "", "csrf_token": token})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'value="alice"' in page  # input kept
    assert page.count('class="error"') == 1


def test_post_without_csrf_token_is_refused(client, auth, make_user):
    make_user("alice")
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302
    auth.login()
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still signed in


def test_csrf_token_of_another_session_is_refused(app, client, auth, make_user):
    make_user("alice")
    other = app.test_client()
    foreign = csrf_token(other.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                           "csrf_token": foreign})
    assert response.status_code == 400


def test_session_id_rotates_at_login(client, auth, make_user):
    make_user("alice")
    client.get("/login")
    before = session_cookie(client)
    assert before
    auth.login()
    after = session_cookie(client)
    assert after and after != before


def test_logout_revokes_the_session_server_side(app, client, auth, make_user):
    make_user("alice")
    auth.login()
    stolen = session_cookie(client)
    auth.logout()
    replay = app.test_client()
    replay.set_cookie("warren_session", stolen)
    assert replay.get("/").status_code == 302


def test_session_cookie_flags(client, auth, make_user):
    make_user("alice")
    response = auth.login()
    header = next(value for value in response.headers.getlist("Set-Cookie")
                  if value.startswith("warren_session="))
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert "Secure" not in header  # plain HTTP by default; cookie_secure turns it on


def test_cookie_secure_setting(tmp_path, make_user):
    from app import create_app
    from conftest import Auth
    app = create_app({"database": str(tmp_path / "s.sqlite3"), "secret_key": "s" * 48,
                      "cookie_secure": True})
    from app import accounts
    with app.app_context():
        accounts.create_user("alice", PASSWORD)
    client = app.test_client()
    response = Auth(client).login()
    assert any("Secure" in value for value in response.headers.getlist("Set-Cookie"))


def test_password_change_revokes_other_sessions(app, client, auth, make_user):
    make_user("alice")
    auth.login()
    other = app.test_client()
    from conftest import Auth
    Auth(other).login()
    token = csrf_token(client.get("/account/password").get_data(as_text=True))
    response = client.post("/account/password", data={
        "current": PASSWORD, "password": "a brand new password", "confirm": "a brand new password",
        "csrf_token": token})
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # this session got a fresh id
    assert other.get("/").status_code == 302  # the other one is gone
    assert Auth(app.test_client()).login(password="a brand new password").status_code == 302


def test_password_change_errors_are_per_field(client, auth, make_user):
    make_user("alice")
    auth.login()
    token = csrf_token(client.get("/account/password").get_data(as_text=True))
    response = client.post("/account/password", data={
        "current": "wrong one", "password": "new password 1", "confirm": "new password 2",
        "csrf_token": token})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "The two entries differ." in page


@pytest.mark.parametrize("target, expected", [
    ("/admin/users", "/admin/users"),
    ("//evil.example/", "/"),
    ("https://evil.example/", "/"),
])
def test_login_redirects_only_within_the_site(client, make_user, target, expected):
    make_user("alice", role="admin")
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(f"/login?next={target}", data={
        "username": "alice", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == expected


def test_admin_pages_are_hidden_from_members(client, auth, make_user):
    make_user("alice")
    make_user("root-admin", role="admin")
    auth.login("alice")
    assert client.get("/admin/users").status_code == 404
    auth.logout()
    auth.login("root-admin")
    page = client.get("/admin/users").get_data(as_text=True)
    assert "alice" in page and "root-admin" in page


def test_json_clients_get_json_errors(client):
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.get_json() == {"error": "Not found.", "status": 404}


def test_throttle_per_address_and_reset_on_success(app, client, auth, make_user):
    from app import throttle
    from app.store import get_db
    make_user("alice")
    for _ in range(2):  # success forgets the failures for this name from this address
        for _ in range(throttle.LIMITS["account"] - 1):
            assert auth.login("alice", "wrong password!").status_code == 401
        assert auth.login("alice").status_code == 302
        auth.logout()
    with app.app_context():  # one address trying many names is blocked too (the
        # failures above count towards it: a success does not forgive the address)
        for number in range(throttle.LIMITS["client"] - 2 * (throttle.LIMITS["account"] - 1)):
            throttle.begin(get_db(), f"name{number}", "127.0.0.1")
    response = auth.login("alice")
    assert response.status_code == 429 and "Too many failed sign-ins" in response.get_data(as_text=True)


def test_expired_sessions_are_purged(app, client, auth, make_user):
    from app import sessions
    from app.store import get_db
    make_user("alice")
    auth.login()
    with app.app_context():
        db = get_db()
        live = db["sessions"].count
        db.execute("UPDATE sessions SET expires_at = '2000-01-01T00:00:00+00:00'")
        assert sessions.purge_expired(db) == live
        assert db["sessions"].count == 0
    assert client.get("/").status_code == 302  # the expired session no longer signs anyone in
