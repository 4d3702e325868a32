"""The browser libraries Warren serves (app/static/vendor/, refreshed by
bin/vendor) are the ones package-lock.json pins. Offline: the lock's
version and integrity against vendor.json, each file against its recorded
sha256, and, when npm's cache holds the package tarballs (content-addressed
by that same integrity), each file against the tarball itself."""
import base64
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENDOR = REPO / "app" / "static" / "vendor"
LOCK = json.loads((REPO / "package-lock.json").read_text())["packages"]
# The packages Warren serves files of; the lock also pins what they depend on
# (swagger-ui-dist's @scarf/scarf, whose install script never runs: bin/vendor
# passes --ignore-scripts, and none of its files is served).
DIRECT = json.loads((REPO / "package.json").read_text())["dependencies"]
FILES = json.loads((VENDOR / "vendor.json").read_text())["files"]


def npm_cached(integrity: str) -> bytes | None:
    """The package tarball npm's cache (cacache) keeps under this integrity, if any."""
    algorithm, digest = integrity.split("-", 1)
    hexdigest = base64.b64decode(digest).hex()
    cache = Path(os.environ.get("npm_config_cache") or Path.home() / ".npm")
    path = cache / "_cacache" / "content-v2" / algorithm / hexdigest[:2] / hexdigest[2:4] / hexdigest[4:]
    return path.read_bytes() if path.is_file() else None


def test_the_vendored_packages_are_the_ones_the_lock_file_pins():
    wanted = {name.removeprefix("node_modules/"): entry for name, entry in LOCK.items()
              if name.removeprefix("node_modules/") in DIRECT}
    assert {entry["package"] for entry in FILES} == set(wanted)
    for entry in FILES:
        pinned = wanted[entry["package"]]
        assert (entry["version"], entry["integrity"]) == (pinned["version"], pinned["integrity"]), \
            f"{entry['path']} comes from another version than the lock's: run bin/vendor"


def test_each_vendored_file_is_the_one_bin_vendor_copied():
    listed = {entry["path"] for entry in FILES}
    present = {str(path.relative_to(VENDOR)) for path in VENDOR.rglob("*")
               if path.is_file() and path.name != "vendor.json"}
    assert present == listed, "files in app/static/vendor/ that bin/vendor did not put there"
    for entry in FILES:
        digest = hashlib.sha256((VENDOR / entry["path"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{entry['path']} was changed after bin/vendor copied it"


def test_each_vendored_file_matches_its_package_tarball():
    tarballs = {entry["integrity"]: npm_cached(entry["integrity"]) for entry in FILES}
    if not all(tarballs.values()):
        pytest.skip("npm's cache does not hold the package tarballs (run bin/vendor once)")
    for entry in FILES:
        tarball = tarballs[entry["integrity"]]
        algorithm, digest = entry["integrity"].split("-", 1)
        assert base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode() == digest
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            packaged = archive.extractfile(f"package/{entry['source']}").read()
            manifest = json.load(archive.extractfile("package/package.json"))
        assert (manifest["name"], manifest["version"]) == (entry["package"], entry["version"])
        assert (VENDOR / entry["path"]).read_bytes() == packaged, \
            f"{entry['path']} differs from {entry['source']} in {entry['package']} {entry['version']}"
