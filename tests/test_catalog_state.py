"""The catalogue is accepted only when signed by the service key and valid."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from credit_check._catalog_state import CatalogState
from credit_check._crypto import Signer, catalog_message, load_public_key
from credit_check._exceptions import InvalidServiceData

SIGNER = Signer.generate()
KEY = load_public_key(SIGNER.public_key)
RAW = json.loads(resources.files("credit_check.data").joinpath("demo_catalog.json").read_text())


def signed(raw: dict[str, Any], signer: Signer = SIGNER) -> dict[str, Any]:
    return {"catalog": raw, "signature": signer.sign(catalog_message(raw))}


def test_signed_catalogue_is_accepted_with_its_etag() -> None:
    state = CatalogState.from_response(signed(RAW), '"2026.1-abc"', KEY)
    assert state.catalog.version == RAW["version"] and state.etag == '"2026.1-abc"'


def test_catalogue_changed_after_signing_is_refused() -> None:
    body = signed(RAW)
    body["catalog"] = copy.deepcopy(RAW)
    body["catalog"]["measures"][0]["effect"] = "review"
    with pytest.raises(InvalidServiceData, match="signature"):
        CatalogState.from_response(body, None, KEY)


def test_catalogue_signed_by_another_key_is_refused() -> None:
    with pytest.raises(InvalidServiceData):
        CatalogState.from_response(signed(RAW, Signer.generate()), None, KEY)


def test_signed_but_invalid_catalogue_is_refused_naming_the_measure() -> None:
    bad = copy.deepcopy(RAW)
    bad["measures"][1]["list_codes"] = ["no.such.list"]
    with pytest.raises(InvalidServiceData, match="P-002"):
        CatalogState.from_response(signed(bad), None, KEY)


@pytest.mark.parametrize("body", [None, [], {"catalog": RAW}, {"signature": "x"}])
def test_malformed_catalogue_answers_are_refused(body: Any) -> None:
    with pytest.raises(InvalidServiceData):
        CatalogState.from_response(body, None, KEY)


def test_persisted_catalogue_is_verified_again_on_load(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    CatalogState.from_response(signed(RAW), '"e"', KEY).save(path)
    assert CatalogState.load(path, KEY).etag == '"e"'
    data = json.loads(path.read_text())
    data["catalog"]["version"] = "tampered"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidServiceData):
        CatalogState.load(path, KEY)
