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
