"""Fuzzing with hypothesis: instance names, SSH keys and profile YAML.
No request ends in a 500; every accepted name is a valid DNS label."""
import itertools
import re

import dns.name
import pytest
import yaml
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from app.errors import ValidationError
from app.profiles import ALLOWED_CONFIG, parse_profile
from app.sshkeys import parse_key
from app.store import get_db
from conftest import Auth
from support import PASSWORD, csrf_token

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d fuzz@test"
LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
FUZZ = hypothesis_settings(max_examples=150, deadline=None, derandomize=True,
                           suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow])
counter = itertools.count()


@pytest.fixture
def member(app, client, make_user):
    """A signed-in member with room for many queued requests (no worker
    runs, so nothing reaches LXD beyond the image list)."""
    user = make_user("fuzz")
    with app.app_context():
        get_db()["users"].update(user["id"], {"quota_overrides": '{"instances": 100000, "cpu": 100000, '
                                              '"memory": 1125899906842624, "disk": 1125899906842624, '
                                              '"processes": 100000000}'})
    Auth(client).login("fuzz", PASSWORD)
    client.token = csrf_token(client.get("/instances/new").get_data(as_text=True))
    return client


def post(client, **fields):
    data = {"name": f"n{next(counter)}", "profile": "small", "image": "busybox", "keys": KEY,
            "csrf_token": client.token}
    data.update(fields)
    return client.post("/instances/new", data=data)


names = st.one_of(st.text(max_size=80), st.from_regex(r"[a-zA-Z0-9-]{1,70}", fullmatch=True),
                  st.text(alphabet="abcxyz-0-9.\u00e9\u0131 _\n", max_size=70))


@FUZZ
@given(name=names)
def test_instance_names(app, member, name):
    response = post(member, name=name)
    assert response.status_code in (303, 409, 422), response.status_code
    if response.status_code == 303:
        with app.app_context():
            stored = get_db().execute("SELECT name FROM instances ORDER BY id DESC LIMIT 1").fetchone()[0]
        assert LABEL.match(stored) and len(stored) <= 63
        dns.name.from_text(f"{stored}.fuzz.vm.example.test")  # a valid DNS name


def mutated_keys():
    body = KEY.split()[1]
    return st.one_of(
        st.text(max_size=300),
        st.builds(lambda prefix: prefix + KEY, st.text(max_size=40)),
        st.builds(lambda cut: KEY[:cut] + "\n" + KEY[cut:], st.integers(0, len(KEY))),
        st.builds(lambda junk: f"ssh-ed25519 {body}{junk} x", st.text(max_size=10)),
        st.builds(lambda comment: f"{KEY.rsplit(' ', 1)[0]} {comment}", st.text(max_size=120)),
        st.builds(lambda options: f"{options} {KEY}", st.sampled_from(
            ['command="/bin/sh"', 'from="*"', "no-pty", 'environment="A=B"'])),
    )


@FUZZ
@given(keys=mutated_keys())
def test_ssh_keys(app, member, keys):
    response = post(member, keys=keys)
    assert response.status_code in (303, 409, 422), response.status_code
    if response.status_code == 303:
        with app.app_context():
            stored = get_db().execute("SELECT ssh_keys FROM instances ORDER BY id DESC LIMIT 1").fetchone()[0]
        for line in stored.splitlines():
            assert parse_key(line).line == line
            assert not line.startswith(("command=", "from=", "no-", "environment="))


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10 ** 12, 10 ** 12), st.floats(allow_nan=False),
              st.text(max_size=30)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=20), children, max_size=4)),
    max_leaves=12)
profile_fields = st.dictionaries(
    st.sampled_from(["description", "instance_type", "limits", "images", "config", "devices",
                     "lease_hours", "approval", "colour"]),
    yaml_values, max_size=8)


@FUZZ
@given(document=st.one_of(st.text(max_size=200), profile_fields.map(yaml.safe_dump)))
def test_profile_yaml_only_ever_gives_validation_errors(document):
    try:
        profile = parse_profile("fuzz", document, "fuzz.yaml")
    except ValidationError as error:
        assert all(field.startswith("fuzz.yaml") for field in error.errors)
        return
    for key in profile.lxd_config():
        assert key.startswith("limits.") or key in ALLOWED_CONFIG
