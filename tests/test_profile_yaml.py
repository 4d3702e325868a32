"""The profile parser against hostile YAML: nesting bombs, alias bombs,
values Python cannot build, unbounded values echoed in messages, patterns
a trailing newline slips through, and spellings of one value that must
compare and store as one. The first two through the real admin editor."""
import os
from pathlib import Path

import pytest

from app import profile_changes
from app.errors import ValidationError
from app.profiles import ProfileSet, parse_profile
from conftest import make_app, post_form

GOOD = """\
description: Test profile
instance_type: container
limits: {cpu: 1, memory: 256MiB, disk: 1GiB, processes: 100, cpu_allowance: 20%, cpu_priority: 3}
images: [busybox]
"""
NESTING_BOMB = "[" * 2000
ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
description: x
images: [busybox]
limits: {cpu: 1, memory: *f, disk: 1GiB, processes: 100}
"""
MAX_QUOTED = 40  # characters of a bad value a message may quote
SMALL_PAGE = 20_000  # bytes: the editor page with its messages, never the expanded input


@pytest.fixture
def app(tmp_path):
    """The app with its own copy of profiles/, which the editor may write."""
    return make_app(tmp_path, own_profiles=True)


def folder_state(app):
    folder = Path(app.config["WARREN"].profiles_dir)
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())
            if path.name != ".lock"}  # the editor's lock file, empty


def errors_of(text, name="pp"):
    with pytest.raises(ValidationError) as caught:
        parse_profile(name, text, "p.yaml")
    return caught.value.errors


# --- through the admin editor ----------------------------------------------

@pytest.mark.parametrize("page, data", [
    ("/admin/profiles/small", {}),
    ("/admin/profiles/new", {"name": "bomb"}),
])
@pytest.mark.parametrize("reviewed", [False, True])
def test_a_nesting_bomb_in_the_editor_is_a_field_error(app, admin, page, data, reviewed):
    before = folder_state(app)
    data = {**data, "text": NESTING_BOMB, **({"reviewed": NESTING_BOMB} if reviewed else {})}
    response = post_form(admin, page, data, expect=422)
    body = response.get_data(as_text=True)
    assert "is nested deeper than" in body
    assert len(response.get_data()) < SMALL_PAGE
    assert folder_state(app) == before


@pytest.mark.parametrize("page, data", [
    ("/admin/profiles/small", {}),
    ("/admin/profiles/new", {"name": "bomb"}),
])
@pytest.mark.parametrize("reviewed", [False, True])
def test_an_alias_bomb_in_the_editor_is_refused_before_it_expands(app, admin, page, data, reviewed):
    before = folder_state(app)
    data = {**data, "text": ALIAS_BOMB, **({"reviewed": ALIAS_BOMB} if reviewed else {})}
    response = post_form(admin, page, data, expect=422)
    body = response.get_data(as_text=True)
    assert "anchors and aliases are not allowed" in body
    assert len(response.get_data()) < SMALL_PAGE
    assert body.count("lol") <= ALIAS_BOMB.count("lol")  # the textarea keeps the input, no more
    assert folder_state(app) == before


def test_a_review_that_only_changes_case_shows_no_change(app, admin):
    folder = Path(app.config["WARREN"].profiles_dir)
    (folder / "cased.yaml").write_text(GOOD + "config:\n  boot.autostart: true\n"
                                       "  limits.memory.enforce: hard\n  security.nesting: false\n")
    shouted = GOOD + "config:\n  boot.autostart: TRUE\n  limits.memory.enforce: HARD\n" \
        "  security.nesting: 'False'\n"
    review = post_form(admin, "/admin/profiles/cased", {"text": shouted}, expect=200)
    assert "Nothing changes." in review.get_data(as_text=True)
    with app.test_request_context():
        result = profile_changes.review("cased", shouted, creating=False)
    assert result.changes == []
    assert result.profile.lxd_config()["limits.memory.enforce"] == "hard"


# --- the parser ------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "description: &d x\n" + GOOD.split("\n", 1)[1],
    GOOD + "config: {boot.autostart: &t true, snapshots.pattern: *t}\n",
    "base: &base {cpu: 1}\n" + GOOD.replace("limits: {", "limits: {<<: *base, "),
    ALIAS_BOMB,
    "x: *undefined\n" + GOOD,
])
def test_anchors_and_aliases_are_refused_naming_the_file(text):
    errors = errors_of(text)
    assert errors == {"p.yaml": ["uses YAML anchors or aliases (& and *): anchors and aliases "
                                 "are not allowed"]}


@pytest.mark.parametrize("text", [
    "[" * 2000, "{" * 2000, "a:\n" + "".join("  " * n + "- \n" for n in range(1, 200)),
    "[" * 9 + "]" * 9, GOOD + "config: {snapshots.pattern: [[[[[[x]]]]]]}\n",
])
def test_deep_nesting_is_refused_before_composing(text):
    errors = errors_of(text)
    assert list(errors) == ["p.yaml"]
    assert errors["p.yaml"][0].startswith("is nested deeper than")


def test_ordinary_nesting_still_parses():
    profile = parse_profile("pp", GOOD + "config:\n  snapshots.schedule: '@daily'\n", "p.yaml")
    assert profile.config == {"snapshots.schedule": "@daily"}


@pytest.mark.parametrize("text, field", [
    ("limits: {cpu: " + "1" * 5000 + "}\n", "limits.cpu"),
    ("lease_hours: " + "9" * 5000 + "\n", "lease_hours"),
    ("limits: {memory: 2001-13-45}\n", "limits.memory"),
    ("1: one\n", "1"),
    ("[1, 2]: pair\n", "p.yaml"),
    ("config: {1: x, snapshots.pattern: y}\n", "config.1"),
])
def test_values_python_cannot_build_are_field_errors(text, field):
    errors = errors_of(GOOD + text)  # a repeated key replaces the first
    assert f"p.yaml: {field}" in errors or field in errors, errors


LONG = "x" * 10_000  # within the length a profile may have


@pytest.mark.parametrize("text", [
    GOOD.replace("256MiB", LONG),
    GOOD.replace("20%", LONG),
    GOOD.replace("20%", "'" + "1" * 5_000 + "ms/100ms'"),
    GOOD + f"config: {{security.nesting: {LONG}}}\n",
    GOOD + f"config: {{limits.memory.enforce: {LONG}}}\n",
    GOOD + f"config: {{snapshots.pattern: {LONG}}}\n",
    GOOD + f"config:\n  ? {LONG}\n  : 1\n",  # an explicit key may be as long as it likes
    GOOD + f"config:\n  ? raw.{LONG}\n  : 1\n",
    GOOD + f"? {LONG}\n: 1\n",
    GOOD + f"limits:\n  ? {LONG}\n  : 1\n",
    GOOD.replace("instance_type: container", f"instance_type: {LONG}"),
    GOOD.replace("limits: {", f"limits: {{memory: '{'9' * 5000}GiB', ").replace("memory: 256MiB, ", ""),
    f"description: x\nfoo: bar\n  baz: {LONG}\n",
    f"description: x\n{LONG}\n",
    f"description: !<!{LONG}> x\n",
    f"description: !{LONG}! x\n",
    f"description: '{LONG}",
])
def test_messages_quote_at_most_a_few_dozen_characters_of_the_input(text):
    errors = errors_of(text)
    for field, messages in errors.items():
        assert len(field) <= 2 * MAX_QUOTED, field[:200]
        for message in messages:
            assert "x" * (MAX_QUOTED + 1) not in message, message[:200]
            assert "1" * (MAX_QUOTED + 1) not in message and "9" * (MAX_QUOTED + 1) not in message
            assert len(message) <= 400, message[:500]


def test_a_document_longer_than_any_profile_is_refused_unread():
    errors = errors_of(GOOD + "# " + "x" * 70_000 + "\n")
    assert errors == {"p.yaml": ["is longer than 64KiB; a profile takes a few hundred bytes"]}


def test_a_long_bad_value_is_quoted_with_an_ellipsis():
    errors = errors_of(GOOD.replace("256MiB", "a" * 60))
    assert errors["p.yaml: limits.memory"] == [f"'{'a' * MAX_QUOTED}…' is not a size like 512MiB or 4GiB"]


@pytest.mark.parametrize("spelling", ["true", "True", "TRUE", "'true'", "'TRUE'", "'True'", "yes", "on"])
def test_boolean_config_values_are_stored_as_true(spelling):
    profile = parse_profile("pp", GOOD + f"config:\n  boot.autostart: {spelling}\n", "p.yaml")
    assert profile.config == {"boot.autostart": "true"}


@pytest.mark.parametrize("spelling", ["hard", "HARD", "Hard", "'HARD'"])
def test_choices_are_stored_in_lower_case(spelling):
    profile = parse_profile("pp", GOOD + f"config:\n  limits.memory.enforce: {spelling}\n", "p.yaml")
    assert profile.lxd_config()["limits.memory.enforce"] == "hard"


@pytest.mark.parametrize("value", ["1", "[true]", "{a: b}", "''", "null"])
def test_config_values_must_be_one_of_the_choices(value):
    errors = errors_of(GOOD + f"config:\n  security.nesting: {value}\n")
    assert errors == {"p.yaml: config.security.nesting": ["security.nesting must be one of true, false"]}


@pytest.mark.parametrize("value", ["[a, b]", "{a: b}", "null", "''", '"two\\nlines"'])
def test_free_config_values_are_one_line_of_text(value):
    errors = errors_of(GOOD + f"config:\n  snapshots.pattern: {value}\n")
    assert list(errors) == ["p.yaml: config.snapshots.pattern"]


def test_a_trailing_newline_never_passes_a_pattern(tmp_path):
    assert "p.yaml: name" in errors_of(GOOD, name="small\n")
    assert "p.yaml: limits.cpu_allowance" in errors_of(GOOD.replace("20%", '"50%\\n"'))
    assert "p.yaml: limits.cpu_allowance" in errors_of(GOOD.replace("20%", '"20ms/100ms\\n"'))
    with pytest.raises(ValidationError):
        ProfileSet(str(tmp_path)).path("small\n")
    assert not os.listdir(tmp_path)


def test_time_slices_are_bounded():
    assert parse_profile("pp", GOOD.replace("20%", "20ms/100ms"), "p.yaml").limits.cpu_allowance \
        == "20ms/100ms"
    for slice_ in ("0ms/100ms", "20ms/0ms", "020ms/100ms", "20ms/5000ms", "99999999ms/100ms"):
        assert "p.yaml: limits.cpu_allowance" in errors_of(GOOD.replace("20%", slice_)), slice_


@pytest.mark.parametrize("key, value, reason", [
    ("snapshots.schedule", "every day", "five cron fields"),
    ("snapshots.schedule", "'* * * *'", "five cron fields"),
    ("snapshots.expiry", "forever", "amounts with a unit"),
    ("snapshots.expiry", "1d 2d", "each unit once"),
    ("snapshots.pattern", "fixed", "contain %d"),
    ("snapshots.pattern", "'a/b%d'", "letters, digits"),
    ("snapshots.schedule.stopped", "maybe", "one of true, false"),
])
def test_snapshot_keys_are_checked_as_lxd_reads_them(key, value, reason):
    errors = errors_of(GOOD + f"config:\n  {key}: {value}\n")
    assert list(errors) == [f"p.yaml: config.{key}"] and reason in errors[f"p.yaml: config.{key}"][0]


def test_a_snapshot_schedule_with_expiry_and_pattern_parses():
    profile = parse_profile("pp", GOOD + "config:\n  snapshots.schedule: '0 3 * * *, @startup'\n"
                            "  snapshots.expiry: 2w 3d\n  snapshots.pattern: nightly-%d\n"
                            "  snapshots.schedule.stopped: true\n", "p.yaml")
    assert profile.config == {"snapshots.schedule": "0 3 * * *, @startup", "snapshots.expiry": "2w 3d",
                              "snapshots.pattern": "nightly-%d", "snapshots.schedule.stopped": "true"}


def test_a_profile_may_name_a_cluster_group():
    assert parse_profile("pp", GOOD + "placement: '@vm-hosts'\n", "p.yaml").placement == "@vm-hosts"
    assert parse_profile("pp", GOOD, "p.yaml").placement is None


@pytest.mark.parametrize("value", ["vm-hosts", "'@'", "'@Big Box'", "'@-x'", "[a]", "true", "'m1'"])
def test_a_placement_that_is_not_a_group_is_a_field_error(value):
    with pytest.raises(ValidationError) as raised:
        parse_profile("pp", GOOD + f"placement: {value}\n", "p.yaml")
    assert "must be @ and the name of an LXD cluster group" in str(raised.value.errors)
