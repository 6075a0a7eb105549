"""The README documents every setting with its default, and its two commands are the real ones."""

from __future__ import annotations

from pathlib import Path

from livefeed.settings import SETTINGS, settings_table

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_documents_every_setting_with_its_default() -> None:
    for setting in SETTINGS:
        assert f"`{setting.env}`" in README, setting.env
        assert f"`{setting.flag}`" in README, setting.flag
    assert settings_table() in README, "regenerate the table: livefeed settings-table"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(
        line.strip() for line in README.splitlines() if "pytest" in line and "pip install" in line
    )
    assert test_command in ci
