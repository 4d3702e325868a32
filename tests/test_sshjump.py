"""What the jump server's key lookup answers (no sshd needed: the
end-to-end behaviour is in test_ssh.py)."""
from app import sshjump
from app.store import get_db
from support import instance_row as add

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d a@b"
FINGERPRINT = "SHA256:test"


def test_a_key_may_only_open_its_members_ready_instances(app, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with app.app_context():
        db = get_db()
        db["ssh_keys"].insert({"user_id": alice["id"], "fingerprint": FINGERPRINT, "public_key": KEY,
                               "created_at": "x"})
        add(db, alice["id"], "web", "ready", "10.88.0.5")
        add(db, alice["id"], "old", "failed", None)
        add(db, alice["id"], "going", "deleting", "10.88.0.7")
        add(db, bob["id"], "bobs", "ready", "10.88.0.9")
        (line,) = sshjump.authorized_keys(db.conn, FINGERPRINT)
        assert line == f'{sshjump.OPTIONS},permitopen="10.88.0.5:22" {KEY}'
        assert line.startswith("restrict,port-forwarding,")
        assert sshjump.authorized_keys(db.conn, "SHA256:unknown") == []
        db["users"].update(alice["id"], {"disabled": 1})
        assert sshjump.authorized_keys(db.conn, FINGERPRINT) == []


def test_the_snippet_names_the_instance_and_the_jump_host(app):
    settings = app.config["WARREN"]
    snippet = sshjump.config_snippet({"fqdn": "web.alice.zone", "ipv4": "10.88.0.5"}, settings)
    assert snippet.splitlines() == [
        "Host web.alice.zone", "    HostName 10.88.0.5", "    HostKeyAlias web.alice.zone",
        "    User root", f"    ProxyJump warren-jump@127.0.0.1:{settings.ssh_port}"]
