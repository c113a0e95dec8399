"""Real catalogues end to end, on both store engines: a signed catalogue with a new
scenario, a new target, an unknown effect and extra fields; the region selecting the
supplements; every related person's role; a staged catalogue run in shadow."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import requests
from _engines import ENGINES, start_sandbox
from _sandbox_support import DEPARTMENT, MakeChecker, admin
from pydantic import BaseModel, ConfigDict

from credit_check import Outcome, Subject, Transaction
from credit_check._ids import mask_id
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE, demo_catalog

BLACK = ["court.judgment_defaulter", "tax.major_violation", "procurement.serious_violation",
         "market.serious_violation", "labor.wage_arrears", "safety.serious_violation"]


@pytest.fixture(params=ENGINES)
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SandboxServer]:
    yield from start_sandbox(request, tmp_path)


def tx(scenario: str, region: str | None = None) -> Transaction:
    return Transaction(scenario=scenario, case_id="CAT-1", region=region)


def codes(decision: Any) -> list[str]:
    return [m.code for m in decision.measures]


def newer_catalogue() -> dict[str, Any]:
    """The demo catalogue with what a newer version would publish: a scenario, a target
    and an effect this version does not know, and fields it has never heard of."""
    data = demo_catalog()
    data["version"] = "2027.1"
    data["published_by"] = "某省信用办"
    data["lists"][0]["colour"] = "black"
    data["scenarios"].append({"code": "concession", "name_zh": "特许经营权出让",
                              "name_en": "concession award", "sort": 9})
    data["measures"] += [
        {"code": "X-1", "name": "限制参与特许经营权出让", "effect": "deny", "list_codes": BLACK,
         "scenarios": ["concession"], "target": "subject", "legal_basis": "示例依据（虚构）",
         "implementing_department": "特许经营项目实施机构", "severity": "high"},
        {"code": "X-2", "name": "对实际控制人从严审核", "effect": "review",
         "list_codes": ["court.judgment_defaulter"], "scenarios": ["procurement"],
         "target": "actual_controller", "legal_basis": "示例依据（虚构）",
         "implementing_department": "财政部门"},
        {"code": "X-3", "name": "暂扣许可证件", "effect": "suspend_license",
         "list_codes": ["tax.major_violation"], "scenarios": ["licensing"],
         "target": "subject", "legal_basis": "示例依据（虚构）",
         "implementing_department": "行政审批部门"},
    ]
    return data


def test_a_signed_catalogue_with_new_codes_and_fields_loads_and_decides(
    sandbox: SandboxServer, make_checker: MakeChecker, caplog: pytest.LogCaptureFixture,
) -> None:
    put = admin(sandbox, "PUT", "/v1/admin/catalog", json=newer_catalogue())
    assert put["schema"] == 2
    checker = make_checker()
    status = checker.status()
    assert status.catalog_version == "2027.1"  # the whole catalogue, not the old one
    assert status.unsupported_measures == (
        "X-2: unknown target 'actual_controller'", "X-3: unknown effect 'suspend_license'")
    assert any(c.startswith("unsupported_measures:") for c in status.degraded_causes)
    caplog.set_level(logging.WARNING, logger="credit_check")

    # The new scenario is decided like any other.
    d = checker.check(SHOWCASE["court_defaulter_org"], tx("concession"))
    assert (d.outcome, codes(d), d.degraded) == (Outcome.DENY, ["X-1"], False)
    # An unknown effect matching a counting entry: at least review, degraded, said why.
    d = checker.check(SHOWCASE["tax_violator_org"], tx("licensing"))
    assert (d.outcome, codes(d), d.degraded) == (Outcome.REVIEW, ["P-004"], True)
    assert any("X-3" in r and "suspend_license" in r for r in d.reasons)
    # An unknown target: its measure may concern anybody the answer shows.
    d = checker.check(SHOWCASE["court_defaulter_org"], tx("procurement"))
    assert (d.outcome, codes(d), d.degraded) == (Outcome.DENY, ["P-001"], True)
    assert any("X-2" in r and "actual_controller" in r for r in d.reasons)
    # Where nothing matches, nothing changes: no degradation, rewards as before.
    d = checker.check(SHOWCASE["clean_3y_org"], tx("licensing"))
    assert (d.outcome, d.degraded) == (Outcome.GREEN_CHANNEL, False)
    d = checker.check(SHOWCASE["watch_org"], tx("licensing"))
    assert (d.outcome, d.degraded) == (Outcome.RESTRICT, False)
    warned = [r.getMessage() for r in caplog.records if "cannot be applied" in r.getMessage()]
    assert len(warned) == 2 and "X-2" in warned[0] and "X-3" in warned[1]


def test_a_scenario_nobody_knows_is_never_allowed(make_checker: MakeChecker) -> None:
    checker = make_checker()
    d = checker.check(SHOWCASE["unknown_org"], tx("procuremnt"))  # a typo
    assert (d.outcome, d.degraded, d.measures) == (Outcome.REVIEW, True, [])
    assert "procuremnt" in d.reasons[0]
    assert checker.status().unknown_scenarios == ("procuremnt",)


class _Wave1List(BaseModel):
    """DESIGN §6 as wave 1 parsed it: unknown fields refused, codes closed."""

    model_config = ConfigDict(extra="forbid")
    code: str
    kind: Literal["red", "black", "watch"]
    name: str
    suspend_on_objection: bool = True


class _Wave1Measure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    name: str
    effect: Literal["deny", "review", "restrict", "green_channel"]
    list_codes: list[str]
    scenarios: list[Literal["licensing", "qualification", "procurement", "bidding", "subsidy",
                            "honor", "market_access", "public_resource"]]
    target: Literal["subject", "legal_representative"] = "subject"
    legal_basis: str
    implementing_department: str
    params: dict[str, Any] = {}


class _Wave1Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    lists: list[_Wave1List]
    measures: list[_Wave1Measure]


def test_a_wave1_client_gets_the_part_of_the_catalogue_it_can_parse(
    sandbox: SandboxServer,
) -> None:
    admin(sandbox, "PUT", "/v1/admin/catalog", json=newer_catalogue())
    headers = {"Authorization": f"Bearer {sandbox.demo_key}"}  # no schema: a wave-1 client
    body = requests.get(sandbox.base_url + "/v1/catalog", headers=headers, timeout=10).json()
    assert (body["upgrade_required"], body["schema"]) == (True, 1)
    catalog = body["catalog"]
    _Wave1Catalog.model_validate(catalog)  # what a wave-1 client does with it
    assert set(catalog) == {"version", "lists", "measures"}
    assert all(set(x) == {"code", "kind", "name", "suspend_on_objection"}
               for x in catalog["lists"])
    wave1_fields = {"code", "name", "effect", "list_codes", "scenarios", "target",
                    "legal_basis", "implementing_department", "params"}
    assert all(set(m) == wave1_fields for m in catalog["measures"])
    assert {m["code"] for m in catalog["measures"]} == {
        "P-001", "P-002", "P-003", "P-004", "P-005", "P-006", "R-001"}


# -- layers: the region selects the supplements -------------------------------------------


@pytest.mark.parametrize(("region", "outcome"), [
    (None, Outcome.ALLOW), ("350100", Outcome.ALLOW),  # no supplement has franchise rules
    ("210102", Outcome.DENY), ("210902", Outcome.DENY),  # Liaoning: Shenyang, Fuxin
])
def test_the_provincial_supplement_applies_under_its_region_only(
    make_checker: MakeChecker, region: str | None, outcome: Outcome,
) -> None:
    d = make_checker().check(SHOWCASE["tax_violator_org"], tx("franchise", region))
    assert d.outcome is outcome
    if outcome is Outcome.DENY:
        (m,) = d.measures
        assert (m.code, m.layer) == ("L-001", "liaoning")
        assert any("辽宁省失信惩戒措施补充清单" in r and "辽政办发〔2022〕5号" in r
                   for r in d.reasons)


def test_a_city_supplement_applies_in_the_city_only(make_checker: MakeChecker) -> None:
    checker = make_checker()
    fuxin = checker.check(SHOWCASE["tax_violator_org"], tx("project_approval", "210902"))
    assert (fuxin.outcome, codes(fuxin)) == (Outcome.DENY, ["F-001"])
    assert any("阜委办发【2019】69号" in r for r in fuxin.reasons)
    shenyang = checker.check(SHOWCASE["tax_violator_org"], tx("project_approval", "210102"))
    assert shenyang.outcome is Outcome.ALLOW


def test_a_stricter_supplement_replaces_the_base_measure_in_its_region(
    make_checker: MakeChecker,
) -> None:
    checker = make_checker()
    base = checker.check(SHOWCASE["watch_org"], tx("qualification"))
    assert base.outcome is Outcome.ALLOW  # the national P-005 is for licensing only
    liaoning = checker.check(SHOWCASE["watch_org"], tx("qualification", "211002"))
    (m,) = liaoning.measures
    assert (liaoning.outcome, m.code, m.layer) == (Outcome.RESTRICT, "P-005", "liaoning")
    licensing = checker.check(SHOWCASE["watch_org"], tx("licensing", "211002"))
    assert [(m.code, m.layer) for m in licensing.measures] == [("P-005", "liaoning")]


def test_the_deployment_region_is_the_default_and_is_recorded(
    make_checker: MakeChecker,
) -> None:
    checker = make_checker(region="210902")
    d = checker.check(SHOWCASE["tax_violator_org"], tx("franchise"))
    assert (d.outcome, d.transaction.region) == (Outcome.DENY, "210902")
    assert checker.status().region == "210902"
    elsewhere = checker.check(SHOWCASE["tax_violator_org"], tx("franchise", "350100"))
    assert elsewhere.outcome is Outcome.ALLOW  # the case's own region wins


def test_a_supplement_that_would_weaken_the_base_is_refused_with_the_reason(
    sandbox: SandboxServer,
) -> None:
    data = demo_catalog()
    weaker = copy.deepcopy(next(m for m in data["measures"] if m["code"] == "P-001"))
    weaker["effect"] = "review"
    data["measures"].append({**weaker, "layer": "fuxin"})
    resp = requests.put(sandbox.base_url + "/v1/admin/catalog", json=data, timeout=10,
                        headers={"Authorization": f"Bearer {sandbox.admin_key}"})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "P-001" in detail and "fuxin" in detail and "milder" in detail


# -- responsible persons ----------------------------------------------------------------


@pytest.mark.parametrize(("org", "scenario", "code", "role"), [
    ("principal_listed_org", "market_access", "P-007", "principal"),
    ("practitioner_org", "qualification", "P-008", "registered_practitioner"),
    ("director_org", "honor", "P-009", "director"),
    ("shareholder_org", "honor", "P-010", "shareholder"),
])
def test_each_role_the_service_names_is_checked(
    make_checker: MakeChecker, org: str, scenario: str, code: str, role: str,
) -> None:
    checker = make_checker()
    d = checker.check(SHOWCASE[org], tx(scenario))
    assert (d.outcome, codes(d), d.degraded) == (Outcome.DENY, [code], False)
    assert [r.role for r in d.subject.related_persons] == [role]
    person = d.subject.related_persons[0].person.id
    shown = d.public_dict()
    assert person not in str(shown) and mask_id(person) in str(shown)
    assert all(person not in r for r in d.reasons)
    # The same organisation in a scenario with no measure on that role: nothing.
    assert checker.check(SHOWCASE[org], tx("subsidy")).outcome is Outcome.ALLOW


def test_a_person_through_a_listed_organisation_is_explained(make_checker: MakeChecker) -> None:
    d = make_checker().check(SHOWCASE["director_org"], tx("honor"))
    listed = SHOWCASE["tax_violator_org"]
    assert [e.subject_id for e in d.matches] == [listed]
    assert any(listed in r and "董事" in r and "is the director of" in r for r in d.reasons)


def test_a_person_the_caller_names_for_a_role_is_checked(make_checker: MakeChecker) -> None:
    org = Subject.organization(SHOWCASE["unknown_org"],
                               persons={"principal": SHOWCASE["court_listed_principal"]})
    d = make_checker().check(org, tx("market_access"))
    assert (d.outcome, codes(d)) == (Outcome.DENY, ["P-007"])
    clean = Subject.organization(SHOWCASE["unknown_org"],
                                 persons={"director": SHOWCASE["practitioner"]})
    assert make_checker().check(clean, tx("honor")).outcome is Outcome.ALLOW


def test_roles_withheld_from_a_key_without_person_rights_are_never_clean(
    sandbox: SandboxServer, make_checker: MakeChecker,
) -> None:
    key = admin(sandbox, "POST", "/v1/admin/keys",
                json={"department": DEPARTMENT, "allow_persons": False})["api_key"]
    checker = make_checker(api_key=key)
    d = checker.check(SHOWCASE["principal_listed_org"], tx("market_access"))
    assert (d.outcome, d.degraded, d.measures) == (Outcome.REVIEW, True, [])
    assert any("主要负责人" in r and "the principal" in r for r in d.reasons)
    assert d.subject.related_persons == ()  # the service showed nobody
    # A scenario whose measures do not target the withheld role is decided as usual.
    plain = checker.check(SHOWCASE["principal_listed_org"], tx("procurement"))
    assert (plain.outcome, plain.degraded) == (Outcome.ALLOW, False)


def test_subjects_and_related_persons_are_imported_and_answered(
    sandbox: SandboxServer, make_checker: MakeChecker,
) -> None:
    org, person = SHOWCASE["unknown_org"], SHOWCASE["listed_shareholder"]
    made = admin(sandbox, "POST", "/v1/admin/subjects", json={"subjects": [
        {"id": org, "name": "示范市某某公司（虚构）",
         "related_persons": [{"id": person, "role": "shareholder", "name": "某某"}]}]})
    assert (made["subjects"], made["related_persons"]) == (1, 1)
    d = make_checker().check(org, tx("honor"))
    assert (d.outcome, codes(d)) == (Outcome.DENY, ["P-010"])
    bad = person[:-1] + ("1" if person[-1] != "1" else "2")  # a wrong check character
    resp = requests.post(sandbox.base_url + "/v1/admin/subjects", timeout=10,
                         headers={"Authorization": f"Bearer {sandbox.admin_key}"},
                         json={"subjects": [{"id": org, "related_persons": [
                             {"id": bad, "role": "director"}]}]})
    assert resp.status_code == 422
    assert "subjects[0].related_persons[0].id" in resp.text and person not in resp.text


# -- dry-run: a shadow catalogue ------------------------------------------------------------


def milder_p001() -> dict[str, Any]:
    data = demo_catalog()
    data["version"] = "2026.3-draft"
    next(m for m in data["measures"] if m["code"] == "P-001")["effect"] = "review"
    return data


def test_every_check_is_decided_on_the_shadow_catalogue_too(make_checker: MakeChecker) -> None:
    checker = make_checker(shadow_catalog=milder_p001())
    listed = checker.check(SHOWCASE["court_defaulter_org"], tx("procurement"))
    assert listed.outcome is Outcome.DENY  # the live decision stands
    clean = checker.check(SHOWCASE["unknown_org"], tx("procurement"))
    person = checker.check(SHOWCASE["black_person"], tx("procurement"))
    local = checker.check_local(SHOWCASE["court_defaulter_org"], tx("procurement"))
    assert (clean.outcome, person.outcome) == (Outcome.ALLOW, Outcome.DENY)
    assert local is not None and local.outcome is Outcome.DENY  # answered from the cache
    status = checker.status()
    assert (status.shadow_catalog_version, status.shadow_checks, status.shadow_diff) == (
        "2026.3-draft", 4, 3)
    assert status.shadow_changes == {"deny->review": 3}
    first = status.shadow_diff_sample[0]
    assert (first["subject"], first["live"], first["shadow"]) == (
        SHOWCASE["court_defaulter_org"], "deny", "review")
    assert first["live_catalog"] == "2026.2" and first["decision_id"] == listed.decision_id
    masked = status.shadow_diff_sample[1]["subject"]
    assert masked == mask_id(SHOWCASE["black_person"])
    assert SHOWCASE["black_person"] not in str(status.shadow_diff_sample)


def test_a_failing_shadow_decision_is_counted_and_never_breaks_the_check(
    make_checker: MakeChecker, caplog: pytest.LogCaptureFixture,
) -> None:
    from credit_check import Catalog

    broken = Catalog.model_construct(version="broken", lists=[], measures=None)
    checker = make_checker(shadow_catalog=broken)
    for _ in range(3):
        d = checker.check(SHOWCASE["court_defaulter_org"], tx("procurement"))
        assert d.outcome is Outcome.DENY
    assert (checker.status().shadow_errors, checker.status().shadow_checks) == (3, 0)
    assert sum("shadow decision" in r.getMessage() for r in caplog.records) == 1


def test_the_services_staged_catalogue_runs_in_shadow_until_it_goes_live(
    sandbox: SandboxServer, make_checker: MakeChecker,
) -> None:
    checker = make_checker()
    assert checker.status().shadow_catalog_version is None
    staged = admin(sandbox, "PUT", "/v1/admin/catalog?stage=1", json=milder_p001())
    assert (staged["staged"], staged["serial"]) == (True, 1)
    assert checker.sync()
    assert checker.status().catalog_version == "2026.2"  # the live one is unchanged
    checker.check(SHOWCASE["court_defaulter_org"], tx("procurement"))
    status = checker.status()
    assert (status.shadow_catalog_version, status.shadow_diff) == ("2026.3-draft", 1)
    off = make_checker(data_dir=checker.settings.data_dir.parent / "off", shadow_catalog="off")
    off.check(SHOWCASE["court_defaulter_org"], tx("procurement"))
    assert off.status().shadow_catalog_version is None
    # Promoted: the staged catalogue goes live and the dry-run ends.
    admin(sandbox, "PUT", "/v1/admin/catalog", json=milder_p001())
    assert checker.sync()
    assert checker.status().catalog_version == "2026.3-draft"
    assert checker.status().shadow_catalog_version is None
    admin(sandbox, "PUT", "/v1/admin/catalog?stage=1", json=demo_catalog())
    assert checker.sync() and checker.status().shadow_catalog_version == "2026.2"
    assert admin(sandbox, "DELETE", "/v1/admin/catalog?stage=1")["withdrawn"] == 2
    assert checker.sync() and checker.status().shadow_catalog_version is None


def test_catalog_diff_reports_what_a_new_catalogue_would_change(
    sandbox: SandboxServer, tmp_path: Path,
) -> None:
    import json
    import os
    import subprocess
    import sys

    from _sandbox_support import ENCRYPTION_KEY

    new = tmp_path / "new.json"
    new.write_text(json.dumps(milder_p001(), ensure_ascii=False), "utf-8")
    subjects = tmp_path / "bidders.csv"
    subjects.write_text("id\n" + "\n".join([SHOWCASE["court_defaulter_org"],
                                           SHOWCASE["unknown_org"],
                                           SHOWCASE["black_person"]]) + "\n", "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_CHECK_")}
    env.update({"CREDIT_CHECK_BASE_URL": sandbox.base_url,
                "CREDIT_CHECK_API_KEY": sandbox.demo_key, "CREDIT_CHECK_DEPARTMENT": DEPARTMENT,
                "CREDIT_CHECK_DATA_DIR": str(tmp_path / "sdk"),
                "CREDIT_CHECK_ENCRYPTION_KEY": ENCRYPTION_KEY,
                "CREDIT_CHECK_SERVICE_PUBLIC_KEY": sandbox.public_key,
                "PYTHONIOENCODING": "utf-8"})
    done = subprocess.run(
        [sys.executable, "-m", "credit_check._cli", "catalog", "diff", str(new), str(subjects),
         "--scenario", "procurement", "--json"], capture_output=True, text=True,
        encoding="utf-8", env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["current_catalog"], report["new_catalog"]) == ("2026.2", "2026.3-draft")
    assert (report["checked"], report["differ"]) == (3, 2)
    assert report["changes"] == {"deny->review": 2}
    assert SHOWCASE["black_person"] not in done.stdout
    assert mask_id(SHOWCASE["black_person"]) in done.stdout
    assert admin(sandbox, "GET", "/v1/admin/feedback")["records"] == []  # nothing recorded
