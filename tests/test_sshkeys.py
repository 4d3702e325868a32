"""SSH public keys: accepted forms, fingerprints, clear refusals."""
import subprocess

import pytest

from app.sshkeys import parse_key, parse_keys


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Real keys from ssh-keygen, with the fingerprints it prints."""
    folder = tmp_path_factory.mktemp("keys")
    made = {}
    for kind, bits in (("ed25519", None), ("rsa", "3072"), ("ecdsa", "256"), ("rsa", "1024")):
        path = folder / f"{kind}{bits or ''}"
        command = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "me@laptop", "-f", str(path)]
        if bits:
            command[4:4] = ["-b", bits]
        subprocess.run(command, check=True)
        fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True,
                                     text=True, check=True).stdout.split()[1]
        made[f"{kind}{bits or ''}"] = ((folder / f"{path.name}.pub").read_text().strip(), fingerprint,
                                       path.read_text())
    return made


@pytest.mark.parametrize("name", ["ed25519", "rsa3072", "ecdsa256"])
def test_real_keys_parse_with_openssh_fingerprints(keys, name):
    line, fingerprint, _private = keys[name]
    key = parse_key(line)
    assert key.fingerprint == fingerprint
    assert key.line == line and key.comment == "me@laptop"


def test_several_keys_one_per_line_with_blank_lines_and_duplicates(keys):
    text = f"{keys['ed25519'][0]}\r\n\n# a comment\n{keys['rsa3072'][0]}\n{keys['ed25519'][0]}\n"
    parsed, problems = parse_keys(text)
    assert problems == [] and len(parsed) == 2


@pytest.mark.parametrize("mangle, message", [
    (lambda line: 'command="rm -rf /" ' + line, "has options before the key type"),
    (lambda line: line.split()[0] + " " + line.split()[1][:-12], "not a valid public key"),
    (lambda line: "ssh-rsa " + line.split()[1], "holds a different kind of key"),
    (lambda line: line + " \x1b[31mred", "control characters"),
    (lambda line: "ssh-ed25519", "no key data"),
])
def test_broken_keys_are_refused_with_the_reason(keys, mangle, message):
    _parsed, problems = parse_keys(mangle(keys["ed25519"][0]))
    assert len(problems) == 1 and message in problems[0]
    assert problems[0].startswith("Line 1 ")


def test_private_key_and_weak_rsa_are_refused(keys):
    _parsed, problems = parse_keys(keys["ed25519"][2])
    assert "not the private key" in problems[0]
    _parsed, problems = parse_keys(keys["rsa1024"][0])
    assert "1024-bit RSA key" in problems[0]
