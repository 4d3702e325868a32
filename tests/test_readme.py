"""README.md stays in step with the code it documents."""
from pathlib import Path

from app.config import KEYS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented_with_its_default():
    for key in KEYS:
        default = f"`{key.default}`" if key.default else "(empty)"
        row = f"| `WARREN_{key.name.upper()}` | {default} |"
        assert row in README, f"README.md lacks the row for WARREN_{key.name.upper()}"


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "bin/test" in ci and "bin/test    #" in README and "bin/up      #" in README
