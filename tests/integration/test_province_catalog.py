"""A catalogue a province writes against docs/catalogue.md, from the seeds' measures (the
national measures the Fuxin plan repeats from 国发〔2016〕33号, a Liaoning supplement under
辽政办发〔2022〕5号 with its red and black lists of 辽发改信用〔2016〕365号, a Fuxin supplement
under 阜委办发【2019】69号), not the demo's: it loads, merges and decides correctly on the
real sandbox, on both store engines."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _engines import ENGINES, start_sandbox
from _sandbox_support import MakeChecker, admin

from credit_check import Catalog, Outcome, Transaction
from credit_check._catalog_layers import merge
from credit_check._models import CST
from credit_check._server import SandboxServer
from credit_check._server._demo import make_id_number, make_uscc

FILE = Path(__file__).parent / "catalogs" / "liaoning_fuxin.json"
FUXIN, SHENYANG, FUZHOU = "210902", "210102", "350100"


@pytest.fixture(params=ENGINES)
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SandboxServer]:
    yield from start_sandbox(request, tmp_path)


def province() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FILE.read_text("utf-8"))
    return data


def names() -> dict[str, str]:
    import random

    rng = random.Random("province catalogue")
    return {"black_firm": make_uscc(rng), "court_firm": make_uscc(rng),
            "principal": make_id_number(rng), "principal_firm": make_uscc(rng),
            "clean_firm": make_uscc(rng), "red_firm": make_uscc(rng),
            "director": make_id_number(rng), "directed_firm": make_uscc(rng)}


def listing(entry_id: str, subject: str, list_code: str, kind: str = "black",
            subject_kind: str = "organization") -> dict[str, Any]:
    return {"entry_id": entry_id, "list_code": list_code, "list_kind": kind,
            "subject_id": subject, "subject_kind": subject_kind, "name": "示例（虚构）",
            "issuing_department": "辽宁省某厅", "basis_document": f"辽示〔2025〕{entry_id}号",
            "effective_from": "2025-01-01"}


def test_the_province_catalogue_validates_and_keeps_its_layers_and_provenance() -> None:
    catalog = Catalog.load(merge(province(), province()["supplements"]))
    assert [(x.code, x.level, x.region) for x in catalog.layers] == [
        ("national", "national", None), ("liaoning", "provincial", "21"),
        ("fuxin", "city", "2109")]
    assert catalog.unsupported() == []
    assert {"production_license", "financial_institution"} <= catalog.scenario_codes()
    assert all(m.grounds and m.evidence for m in catalog.measures)


def test_the_province_catalogue_loads_and_decides_by_region(
    sandbox: SandboxServer, make_checker: MakeChecker,
) -> None:
    put = admin(sandbox, "PUT", "/v1/admin/catalog", json=province())
    assert (put["version"], put["schema"]) == ("辽宁-2026.1", 2)
    n = names()
    admin(sandbox, "POST", "/v1/admin/entries", json={"entries": [
        listing("1", n["black_firm"], "ln.black_list"),
        listing("2", n["court_firm"], "ln.court_defaulter"),
        listing("3", n["principal"], "ln.court_defaulter", subject_kind="person"),
        listing("4", n["red_firm"], "ln.red_list", kind="red"),
        listing("5", n["directed_firm"], "ln.tax_blacklist")]})
    clean_since = (dt.datetime.now(CST) - dt.timedelta(days=4 * 366)).date().isoformat()
    admin(sandbox, "POST", "/v1/admin/subjects", json={"subjects": [
        {"id": n["principal_firm"], "related_persons": [
            {"id": n["principal"], "role": "principal"}]},
        {"id": n["clean_firm"], "clean_since": clean_since},
        {"id": n["directed_firm"], "related_persons": [
            {"id": n["director"], "role": "director"}]}]})
    checker = make_checker()
    assert checker.status().catalog_version == "辽宁-2026.1"

    def check(who: str, scenario: str, region: str | None = None) -> Any:
        return checker.check(n[who], Transaction(scenario=scenario, region=region))

    def measures(d: Any) -> list[tuple[str, str | None]]:
        return [(m.code, m.layer) for m in d.measures]

    # The province's own black list counts only where the province's supplement applies.
    d = check("black_firm", "licensing", FUXIN)
    assert (d.outcome, measures(d)) == (Outcome.REVIEW, [("N-01", "liaoning")])
    assert check("black_firm", "licensing", FUZHOU).outcome is Outcome.ALLOW
    assert check("black_firm", "qualification", SHENYANG).outcome is Outcome.REVIEW
    # The city's measures, in the city only.
    d = check("court_firm", "production_license", FUXIN)
    assert (d.outcome, measures(d)) == (Outcome.REVIEW, [("F-01", "fuxin")])
    assert any("阜委办发【2019】69号" in r for r in d.reasons)
    assert check("court_firm", "production_license", SHENYANG).outcome is Outcome.ALLOW
    assert check("court_firm", "financial_institution", FUXIN).outcome is Outcome.DENY
    # The national measures, everywhere.
    for region in (None, FUXIN, FUZHOU):
        assert check("court_firm", "franchise", region).outcome is Outcome.DENY
    # Rewards: the province's red list; the city's clean-record green channel.
    assert check("red_firm", "licensing", SHENYANG).outcome is Outcome.GREEN_CHANNEL
    assert check("red_firm", "licensing", FUZHOU).outcome is Outcome.ALLOW
    d = check("clean_firm", "licensing", FUXIN)
    assert (d.outcome, measures(d)) == (Outcome.GREEN_CHANNEL, [("F-R1", "fuxin")])
    assert check("clean_firm", "licensing", SHENYANG).outcome is Outcome.ALLOW
    # Responsible persons: a listed principal bars the firm from the market.
    d = check("principal_firm", "market_access")
    assert (d.outcome, measures(d)) == (Outcome.DENY, [("N-07", None)])
    # A director of a blacklisted firm loses honours, as a person applying.
    d = checker.check(n["director"], Transaction(scenario="honor"))
    assert (d.outcome, measures(d)) == (Outcome.DENY, [("N-09", None)])
    assert check("clean_firm", "honor").outcome is Outcome.ALLOW
