"""The setup scripts bin/up and bin/test use are idempotent against the
real daemons: a second run keeps data and changes nothing."""
import os
import subprocess
from pathlib import Path

from app import dns as warren_dns

REPO = Path(__file__).resolve().parent.parent


def run(*command):
    return subprocess.run([str(REPO / command[0]), *command[1:]], capture_output=True,
                          text=True, check=True, env=os.environ)


def test_named_restart_keeps_published_records_and_keys(zone, dig, unique_name, settings):
    name = f"{unique_name('keep')}.carol.{zone.name}"
    warren_dns.publish_address(zone, name, "10.87.0.30", "carol")
    key_before = Path(settings.dns_key_file).read_text()
    signing_key = dig(zone.name, "DNSKEY")
    assert signing_key  # the zone is signed
    try:
        run("dns/named.sh", "start")  # running: re-renders config, reconfigures
        assert dig(name) == ["10.87.0.30"]
        run("dns/named.sh", "stop")
        stopped = subprocess.run([str(REPO / "dns/named.sh"), "status"], capture_output=True,
                                 text=True, env=os.environ)
        assert stopped.returncode == 3 and stopped.stdout.strip() == "stopped"
        run("dns/named.sh", "start")  # stopped: starts again from zone + journal
        assert dig(name) == ["10.87.0.30"]
        assert Path(settings.dns_key_file).read_text() == key_before
        assert dig(zone.name, "DNSKEY") == signing_key  # the same DNSSEC key: the DS stays true
        assert Path(settings.dns_dir, "keys").stat().st_mode & 0o777 == 0o700
        assert warren_dns.zone_from_settings(settings) == zone
    finally:
        warren_dns.remove_name(zone, name, "carol")


def test_image_ensure_is_a_no_op_the_second_time(settings):
    result = run("images/ensure.sh", settings.image_cache, "busybox")
    assert result.stdout == ""


def test_image_ensure_names_an_unknown_recipe(settings):
    result = subprocess.run([str(REPO / "images/ensure.sh"), settings.image_cache, "nope"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "no recipe images/nope/build.sh" in result.stderr
