"""SSH from outside through the co-op's one public address: Warren's jump
server (the project's sshd, ssh/sshd.sh) on the host's end of a simulated
Internet, a client in the Internet namespace using the snippet from the
instance page, a Debian container with its own sshd (real LXD, named, sshd)."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app import accounts, members as member_admin, sshjump
from app.config import Settings
from app.store import connect_readonly
from conftest import REPO
from live import free_port
from support import csrf_token, launch, post_action, wait_gone, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.lxd, pytest.mark.named]


def keypair(folder: Path, name: str) -> tuple[Path, str]:
    """A fresh ed25519 key: (private key file, public key line)."""
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
                   check=True)
    return path, (folder / f"{name}.pub").read_text().strip()


@pytest.fixture
def jump(app, internet, tmp_path):
    """Warren's jump server on the public address, reading this test's database."""
    port = free_port()
    # sshd runs the key lookup only from folders that are root's alone: not under /tmp.
    ssh_dir = Path(f"/var/lib/warren/test-ssh-{os.getpid()}-{port}")
    env = dict(os.environ, WARREN_SSH_ADDRESS=internet.host_ip, WARREN_SSH_PORT=str(port),
               WARREN_SSH_DIR=str(ssh_dir), WARREN_DATABASE=app.config["WARREN"].database)
    subprocess.run([str(REPO / "ssh" / "sshd.sh"), "start"], env=env, check=True, capture_output=True)
    app.config["WARREN"] = Settings(app.config["WARREN"], ssh_address=internet.host_ip, ssh_port=port)
    yield env
    subprocess.run([str(REPO / "ssh" / "sshd.sh"), "stop"], env=env, capture_output=True)
    shutil.rmtree(ssh_dir, ignore_errors=True)


def client_config(folder: Path, snippet: str, key: Path) -> Path:
    """~/.ssh/config as a member has it after pasting the snippet."""
    path = folder / f"config-{key.name}"
    path.write_text(snippet + f"\nHost *\n    IdentityFile {key}\n    IdentitiesOnly yes\n"
                    "    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n"
                    "    BatchMode yes\n    ConnectTimeout 10\n    LogLevel ERROR\n")
    return path


def ssh(internet, config: Path, host: str, *command: str):
    return internet.run("ssh", "-F", str(config), host, *command, timeout=60)


def snippet_of(client, location: str) -> str:
    page = client.get(location).get_data(as_text=True)
    snippet = page.split('<pre id="ssh-config">', 1)[1].split("</pre>", 1)[0]
    return snippet.replace("&#39;", "'").replace("&amp;", "&")


def test_the_pasted_snippet_reaches_the_members_container_and_nothing_else(
        app, settings, worker, members, debian_image, jump, internet, tmp_path):
    alice, bob = members(), members()
    alice_key, alice_public = keypair(tmp_path, "alice")
    bob_key, bob_public = keypair(tmp_path, "bob")
    location, progress = launch(alice, name="web", image=debian_image, keys=alice_public)
    ready_at = time.monotonic()
    launch(bob, name="box", keys=bob_public)  # bob's key is known to the jump server too
    snippet = snippet_of(alice, location)
    assert f"Host {progress['fqdn']}" in snippet and f"HostName {progress['ipv4']}" in snippet
    config = client_config(tmp_path, snippet, alice_key)

    def works():
        result = ssh(internet, config, progress["fqdn"], "hostname")
        return result.returncode == 0 and result.stdout.strip() == "web"
    wait_until(works, timeout=120, message="ssh through the jump server", step=0.5)
    print(f"ready -> SSH works from outside: {time.monotonic() - ready_at:.1f} s")

    # Bob's key opens the jump server but not alice's container, and no shell on the host.
    refused = ssh(internet, client_config(tmp_path, snippet, bob_key), progress["fqdn"], "hostname")
    assert refused.returncode != 0 and "web" not in refused.stdout
    assert "stdio forwarding failed" in refused.stderr, refused.stderr  # the jump host refused the hop
    port = app.config["WARREN"].ssh_port
    shell = internet.run("ssh", "-i", str(bob_key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
                         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                         f"warren-jump@{internet.host_ip}", "id", timeout=60)
    assert shell.returncode != 0 and "uid=" not in shell.stdout
    tunnel = internet.run("ssh", "-i", str(bob_key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
                          "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-W",
                          f"{settings.dns_server}:{settings.dns_port}",
                          f"warren-jump@{internet.host_ip}", input="", timeout=60)
    assert tunnel.returncode != 0  # the host's own services are not reachable either

    # Deleted: nothing answers, and sshd's view of alice's key grants nothing.
    assert post_action(alice, location, "delete").status_code == 303
    wait_gone(alice, location)
    assert ssh(internet, config, progress["fqdn"], "hostname").returncode != 0
    lookup = subprocess.run([jump["WARREN_SSH_DIR"] + "/authorized-keys", fingerprint(alice_key)],
                            capture_output=True, text=True, check=True)
    assert lookup.stdout.strip() == ""


def fingerprint(private_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", f"{private_key}.pub"], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[1]


def test_removed_keys_and_disabled_members_are_refused_at_once(
        app, worker, members, debian_image, jump, internet, tmp_path, make_user):
    alice = members()
    key, public = keypair(tmp_path, "alice")
    location, progress = launch(alice, name="web", image=debian_image, keys=public)
    config = client_config(tmp_path, snippet_of(alice, location), key)
    wait_until(lambda: ssh(internet, config, progress["fqdn"], "true").returncode == 0, timeout=120,
               message="ssh through the jump server", step=0.5)

    page = alice.get("/keys").get_data(as_text=True)
    key_id = page.split('action="/keys/', 1)[1].split("/delete", 1)[0]
    alice.post(f"/keys/{key_id}/delete", data={"csrf_token": csrf_token(page)})
    refused = ssh(internet, config, progress["fqdn"], "true")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr

    token = csrf_token(alice.get("/keys").get_data(as_text=True))
    assert alice.post("/keys", data={"keys": public, "csrf_token": token}).status_code == 303
    assert ssh(internet, config, progress["fqdn"], "true").returncode == 0  # back at once

    make_user("boss2", role="admin")
    with app.app_context():
        member_admin.disable(accounts.find_user("boss2"), alice.username)
    refused = ssh(internet, config, progress["fqdn"], "true")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    with app.app_context():
        db = connect_readonly(app.config["WARREN"].database)
        assert sshjump.authorized_keys(db, fingerprint(key)) == []
