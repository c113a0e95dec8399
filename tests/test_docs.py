"""The user's documentation: it cites no document that is not in the repository (the
founders' design sketch), sends no one to a private module (the one documented entry
point of the sandbox for ASGI servers aside), and the LICENSE file is the licence that
pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *ROOT.glob("README.*.md"), *ROOT.glob("docs/**/*.md"),
               ROOT / "docs" / "openapi.json", *ROOT.glob("examples/**/*.md")])
# The sandbox's application factory for a plain ASGI server (uvicorn --factory ...).
ENTRY_POINTS = {"credit_check._server:app_from_env"}
PRIVATE = re.compile(r"credit_check\._[A-Za-z_.:]+")


def test_there_are_docs_to_check() -> None:
    assert len(DOCS) >= 10


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_cite_no_missing_design_document(path: Path) -> None:
    text = path.read_text("utf-8")
    assert "DESIGN" not in text and "DESIGN.md" not in text


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_send_no_one_to_a_private_module(path: Path) -> None:
    found = set(PRIVATE.findall(path.read_text("utf-8"))) - ENTRY_POINTS
    assert not found, f"{path.name} names private modules: {sorted(found)}"


def test_the_license_file_is_the_declared_license() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text("utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text


# -- the configuration tables, in both languages ------------------------------------------

from credit_check._settings import ENV_PREFIX, Settings  # noqa: E402

TABLES = [(ROOT / "README.md", "## Configuration"),
          (ROOT / "docs" / "zh" / "configuration.md", "## SDK 的全部配置项")]
NONE = ("—", "-")


def settings_table(path: Path, heading: str) -> dict[str, str]:
    """The first table under ``heading``: variable name -> its default cell."""
    lines = path.read_text("utf-8").splitlines()
    at = lines.index(heading)
    rows: dict[str, str] = {}
    for line in lines[at + 1 :]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            found = re.fullmatch(rf"`{ENV_PREFIX}([A-Z_]+)`", cells[0])
            if found:
                assert found[1].lower() not in rows, f"{found[1]} twice in {path.name}"
                rows[found[1].lower()] = cells[1]
        elif rows:
            break  # the end of the table
    return rows


def documents(default: object, cell: str) -> bool:
    """Whether a table's default cell states ``default``."""
    quoted = re.match(r"`([^`]*)`", cell)
    if default is None or default == ():
        return quoted is None and cell.startswith(NONE)
    if quoted is None:
        return False
    text = quoted[1]
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, int | float):
        return float(text.replace(",", "")) == float(default)
    return text == str(default)


@pytest.mark.parametrize(("path", "heading"), TABLES, ids=["README.md", "docs/zh"])
def test_every_setting_is_documented_with_its_default(path: Path, heading: str) -> None:
    table = settings_table(path, heading)
    assert set(table) == set(Settings.model_fields), (
        f"{path.name}: missing {sorted(set(Settings.model_fields) - set(table))}, "
        f"not settings {sorted(set(table) - set(Settings.model_fields))}")
    for name, field in Settings.model_fields.items():
        assert documents(field.default, table[name]), (path.name, name, field.default,
                                                       table[name])


def test_the_chinese_readme_is_linked_from_the_top_of_the_readme() -> None:
    head = (ROOT / "README.md").read_text("utf-8").splitlines()[:4]
    assert any("(README.zh-CN.md)" in line for line in head)
    zh = (ROOT / "README.zh-CN.md").read_text("utf-8")
    for page in ("quickstart", "integration", "configuration", "failures", "operations"):
        assert f"docs/zh/{page}.md" in zh
        assert (ROOT / "docs" / "zh" / f"{page}.md").is_file()
