"""Configuration: defaults, sources, and errors that name the bad key."""
import pytest

from app.config import KEYS, load_settings, shell_exports
from app.errors import ConfigError


def test_defaults_apply_with_an_empty_environment():
    settings = load_settings(environ={})
    assert settings.dns_zone == "vm.example.test"
    assert settings.listen_port == 8080
    assert settings.database == "/var/lib/warren/warren.sqlite3"
    assert settings.dns_key_file == "/var/lib/warren/dns/warren.key"
    assert settings.images == ("debian-12", "busybox")
    assert set(settings) == {key.name for key in KEYS}


def test_environment_overrides_and_derived_defaults_follow():
    settings = load_settings(environ={"WARREN_DATA_DIR": "/srv/w", "WARREN_DNS_PORT": "5400",
                                      "WARREN_DNS_ZONE": "VM.Coop.Example."})
    assert settings.database == "/srv/w/warren.sqlite3"
    assert settings.dns_port == 5400
    assert settings.dns_zone == "vm.coop.example"


@pytest.mark.parametrize("name, value, fragment", [
    ("WARREN_DNS_PORT", "fifty", "WARREN_DNS_PORT: 'fifty' is not a whole number"),
    ("WARREN_LISTEN_PORT", "80", "WARREN_LISTEN_PORT: 80 is outside 1024..65535"),
    ("WARREN_LISTEN_HOST", "0.0.0.0", "WARREN_LISTEN_HOST: 0.0.0.0 is not a loopback address"),
    ("WARREN_NETWORK_ADDRESS", "10.87.0.0/24", "WARREN_NETWORK_ADDRESS"),
    ("WARREN_DNS_ZONE", "no_underscores.example", "WARREN_DNS_ZONE"),
    ("WARREN_LXD_POOL_SIZE", "lots", "WARREN_LXD_POOL_SIZE: 'lots' is not a size"),
    ("WARREN_COOKIE_SECURE", "maybe", "WARREN_COOKIE_SECURE"),
    ("WARREN_DNS_ZONES", "typo.example", "WARREN_DNS_ZONES: unknown setting"),
])
def test_bad_values_stop_start_up_naming_the_key(name, value, fragment):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={name: value})
    assert fragment in str(caught.value)


def test_config_file_is_read_and_environment_wins(tmp_path):
    path = tmp_path / "warren.toml"
    path.write_text('dns_zone = "vm.file.example"\nlisten_port = 9000\ncookie_secure = true\n')
    settings = load_settings(environ={"WARREN_CONFIG": str(path), "WARREN_LISTEN_PORT": "9100"})
    assert settings.dns_zone == "vm.file.example"
    assert settings.listen_port == 9100
    assert settings.cookie_secure is True


def test_unknown_or_broken_config_file_is_named(tmp_path):
    path = tmp_path / "warren.toml"
    path.write_text('dns_zoen = "x.example"\n')
    with pytest.raises(ConfigError, match="unknown key 'dns_zoen'"):
        load_settings(environ={"WARREN_CONFIG": str(path)})
    path.write_text("dns_zone = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={"WARREN_CONFIG": str(path)})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(environ={"WARREN_CONFIG": str(tmp_path / "missing.toml")})


def test_shell_exports_round_trip(tmp_path):
    settings = load_settings(environ={"WARREN_DATA_DIR": "/srv/with space"})
    exports = shell_exports(settings)
    assert "export WARREN_DATA_DIR='/srv/with space'" in exports
    assert "export WARREN_IMAGES='debian-12 busybox'" in exports


def test_create_app_without_a_secret_key_names_the_key(tmp_path):
    from app import create_app
    with pytest.raises(ConfigError, match="WARREN_SECRET_KEY_FILE"):
        create_app({"database": str(tmp_path / "db"), "secret_key": "",
                    "secret_key_file": str(tmp_path / "missing")})
