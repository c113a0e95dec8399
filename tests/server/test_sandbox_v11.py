"""Protocol v1.1 on the sandbox (DESIGN §9, docs/protocol.md "Protocol v1.1"): what a
lookup withholds, organisations listed through their representative, freshness fields
signed afresh, catalogue serials that only increase, the epoch, capabilities, and the
re-screening hints ``changed`` and ``lifted`` of a delta."""

from __future__ import annotations

import base64
import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _sandbox_app_support import Sandbox, TestClient, assert_problem, entry, org_id

from credit_check._crypto import (
    b64d,
    catalog_message,
    catalog_message_v2,
    id_prefix,
    load_public_key,
    snapshot_message,
    snapshot_message_v2,
    unpack_prefixes,
    verify,
)
from credit_check._exceptions import InvalidServiceData
from credit_check._models import CST
from credit_check._server import create_app, open_sandbox
from credit_check._server._demo import SHOWCASE, demo_catalog, make_id_number

REASON = "key_not_allowed_persons"


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    store, signer, admin_key, demo_key = open_sandbox(tmp_path / "s.db", demo=True)
    with TestClient(create_app(store, signer, admin_key), raise_server_exceptions=False) as c:
        yield Sandbox(c, store, signer, admin_key, demo_key)
    store.close()


def person(seed: int) -> str:
    return make_id_number(random.Random(seed))


def person_entry(entry_id: str, subject_id: str, **extra: Any) -> dict[str, Any]:
    return entry(entry_id, subject_id, subject_kind="person", name="测试人（虚构）", **extra)


def ok(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def prefixes(text: str) -> set[int]:
    return set(unpack_prefixes(base64.b64decode(text)))


def snapshot(sb: Sandbox, since: int | None = None) -> dict[str, Any]:
    params = {} if since is None else {"since": str(since)}
    return ok(sb.get("/v1/snapshot", params=params))


def verify_v2(sb: Sandbox, body: dict[str, Any]) -> None:
    verify(load_public_key(sb.signer.public_key), snapshot_message_v2(
        version=body["version"], checksum=body["checksum"], issued_at=body["issued_at"],
        catalog_serial=body["catalog_serial"], epoch=body["epoch"], since=body.get("since"),
        changed=body.get("changed", ""), lifted=body.get("lifted", [])),
        body["signature_v2"], "snapshot")


# -- §9.1 what a lookup withholds -----------------------------------------------------------


def test_department_keys_get_counting_entries_only_and_admin_the_history(sb: Sandbox) -> None:
    sid = org_id(4100)
    statuses = ["active", "objection_pending", "repaired", "removed", "expired"]
    ok(sb.admin("POST", "/v1/admin/entries", json={"entries": [
        entry(f"st-{s}", sid, status=s) for s in statuses]}))
    for key in (sb.demo_key, sb.new_key("审批局")["api_key"]):
        shown = ok(sb.get(f"/v1/subjects/{sid}", key))
        assert [e["status"] for e in shown["entries"]] == ["active", "objection_pending"]
        batch = ok(sb.post("/v1/subjects:batch", key, json={"ids": [sid]}))
        assert batch["results"][0]["entries"] == shown["entries"]
    history = ok(sb.get(f"/v1/subjects/{sid}", sb.admin_key))
    assert sorted(e["status"] for e in history["entries"]) == sorted(statuses)
    assert history["withheld"] == []


def test_withheld_marks_a_representative_whether_or_not_they_have_entries(sb: Sandbox) -> None:
    plain = sb.new_key("住建局")["api_key"]
    clean_rep, listed_rep = person(1), person(2)
    a, b, c = org_id(4201), org_id(4202), org_id(4203)
    ok(sb.admin("POST", "/v1/admin/entries", json={"entries": [
        entry("wr-a", a, legal_representative_id=clean_rep),
        entry("wr-b", b, legal_representative_id=listed_rep),
        person_entry("wr-p", listed_rep)]}))
    answers = ok(sb.post("/v1/subjects:batch", plain, json={"ids": [a, b, c]}))["results"]
    for answer in answers[:2]:
        assert answer["withheld"] == [{"role": "legal_representative", "reason": REASON}]
        assert answer["subject"]["legal_representative"] is None
        assert [e["legal_representative_id"] for e in answer["entries"]] == [None]
    assert answers[2]["withheld"] == []  # no representative on record
    for rep in (clean_rep, listed_rep):
        hidden = ok(sb.get(f"/v1/subjects/{rep}", plain))
        assert hidden["withheld"] == [{"role": "subject", "reason": REASON}]
        assert hidden["entries"] == [] and hidden["subject"]["name"] is None
        assert hidden["clean_since"] is None
    # With allow_persons nothing is withheld and the representative is named.
    shown = ok(sb.get(f"/v1/subjects/{b}"))
    assert shown["withheld"] == [] and shown["subject"]["legal_representative"]["id"] == listed_rep
    assert shown["entries"][0]["legal_representative_id"] == listed_rep
    assert [e["entry_id"] for e in ok(sb.get(f"/v1/subjects/{listed_rep}"))["entries"]] == [
        "wr-b", "wr-p"]


def test_a_recorded_representative_from_the_subjects_table_is_withheld(sb: Sandbox) -> None:
    org = SHOWCASE["court_defaulter_org"]
    ok(sb.admin("POST", "/v1/admin/entries/demo-00001/status", json={"status": "repaired"}))
    plain = sb.new_key("住建局")["api_key"]
    answer = ok(sb.get(f"/v1/subjects/{org}", plain))
    assert answer["entries"] == []  # repaired: not shown to a department
    assert answer["withheld"] == [{"role": "legal_representative", "reason": REASON}]
    assert SHOWCASE["court_defaulter_rep"] not in str(answer)


# -- organisations listed through their representative --------------------------------------


def test_an_organisation_whose_representative_is_listed_is_in_the_prefix_set(
    sb: Sandbox,
) -> None:
    rep = person(7)
    by_subject, by_entry, unrelated = org_id(4301), org_id(4302), org_id(4303)
    sb.store.upsert([], [(by_subject, "organization", "甲公司（虚构）", rep, None)])
    ok(sb.admin("POST", "/v1/admin/entries", json={"entries": [
        entry("ol-1", by_entry, status="repaired", legal_representative_id=rep)]}))
    base = snapshot(sb)
    assert id_prefix(by_subject) not in prefixes(base["prefixes"])
    # The representative is put on the court list, which a legal_representative measure names.
    ok(sb.admin("POST", "/v1/admin/entries", json={"entries": [
        person_entry("ol-p", rep, list_code="court.judgment_defaulter")]}))
    full = prefixes(snapshot(sb)["prefixes"])
    assert {id_prefix(rep), id_prefix(by_subject), id_prefix(by_entry)} <= full
    assert id_prefix(unrelated) not in full
    delta = snapshot(sb, base["version"])
    assert prefixes(delta["added"]) == {id_prefix(rep), id_prefix(by_subject),
                                        id_prefix(by_entry)}
    # A listing on a list no such measure names does not pull the organisations in.
    ok(sb.admin("POST", "/v1/admin/entries/ol-p/status", json={"status": "repaired"}))
    ok(sb.admin("POST", "/v1/admin/entries", json={"entries": [
        person_entry("ol-q", rep, list_code="tax.major_violation")]}))
    full = prefixes(snapshot(sb)["prefixes"])
    assert id_prefix(rep) in full and id_prefix(by_subject) not in full
    assert id_prefix(by_entry) not in full


# -- §9.2 freshness and rollback ------------------------------------------------------------


def test_every_snapshot_answer_is_signed_afresh_with_issued_at_serial_and_epoch(
    sb: Sandbox,
) -> None:
    full = snapshot(sb)
    empty = snapshot(sb, full["version"])
    again = snapshot(sb, full["version"])
    for body in (full, empty, again):
        verify_v2(sb, body)
        verify(load_public_key(sb.signer.public_key),
               snapshot_message(body["version"], body["checksum"]), body["signature"], "v1")
        assert (body["catalog_serial"], body["epoch"]) == (1, 1)
        issued = dt.datetime.fromisoformat(body["issued_at"])
        assert issued.utcoffset() is not None
        assert abs(issued - dt.datetime.now(CST)) < dt.timedelta(minutes=1)
    assert empty["issued_at"] < again["issued_at"]  # not a stored answer replayed
    assert empty["signature_v2"] != again["signature_v2"]
    assert (empty["added"], empty["removed"], empty["changed"], empty["lifted"]) == (
        "", "", "", [])
    # The signature binds issued_at, serial and epoch: any change breaks it.
    for field, value in (("issued_at", "2020-01-01T00:00:00+08:00"), ("catalog_serial", 0),
                         ("epoch", 2)):
        with pytest.raises(InvalidServiceData):
            verify_v2(sb, {**empty, field: value})


def test_catalog_carries_serial_epoch_schema_and_both_signatures(sb: Sandbox) -> None:
    resp = sb.get("/v1/catalog", headers={"X-Credit-Check-Schema": "2"})
    body = ok(resp)
    # The demo catalogue has layers, named scenarios and role targets: schema 2.
    assert (body["serial"], body["epoch"], body["schema"], body["upgrade_required"]) == (
        1, 1, 2, False)
    key = load_public_key(sb.signer.public_key)
    verify(key, catalog_message(body["catalog"]), body["signature"], "catalogue v1")
    verify(key, catalog_message_v2(body["catalog"], serial=1, epoch=1, schema=2),
           body["signature_v2"], "catalogue v2")
    with pytest.raises(InvalidServiceData):
        verify(key, catalog_message_v2(body["catalog"], serial=2, epoch=1, schema=2),
               body["signature_v2"], "catalogue v2")
    assert resp.headers["etag"].startswith(f'"{body["catalog"]["version"]}-1-')
    # The same catalogue put again gets a new serial, and so a new ETag.
    ok(sb.admin("PUT", "/v1/admin/catalog", json=demo_catalog()))
    again = sb.get("/v1/catalog", headers={"If-None-Match": resp.headers["etag"],
                                           "X-Credit-Check-Schema": "2"})
    assert again.status_code == 200 and again.json()["serial"] == 2
    assert again.headers["etag"].startswith(f'"{body["catalog"]["version"]}-2-')
    assert snapshot(sb)["catalog_serial"] == 2


def test_catalog_serial_only_increases(sb: Sandbox) -> None:
    catalog = demo_catalog()
    body = assert_problem(sb.admin("PUT", "/v1/admin/catalog",
                                   json={**catalog, "serial": 1}), 409, "serial 1",
                          "only increases")
    assert body["title"] == "Catalogue serial goes backwards"
    for bad in (0, -3, "7", 2.0, True, None):
        assert_problem(sb.admin("PUT", "/v1/admin/catalog", json={**catalog, "serial": bad}),
                       422, "serial")
    assert ok(sb.admin("PUT", "/v1/admin/catalog", json={**catalog, "serial": 10}))[
        "serial"] == 10
    assert_problem(sb.admin("PUT", "/v1/admin/catalog", json={**catalog, "serial": 10}), 409)
    # A wave-1 body (no serial) still works: the service assigns the next one.
    assert ok(sb.admin("PUT", "/v1/admin/catalog", json=catalog))["serial"] == 11
    assert ok(sb.get("/v1/catalog"))["serial"] == 11


def test_upgrade_required_when_the_catalogue_needs_a_newer_schema(sb: Sandbox) -> None:
    """A schema-1 client gets the current catalogue in the form it parses (what it can
    apply exactly, same serial) and upgrade_required; a schema-2 client gets it whole."""
    newer = demo_catalog()
    newer["version"] = "2027.1"
    newer["measures"][0]["scenarios"].append("franchise")  # an open scenario code
    newer["measures"][1]["effect"] = "suspend_license"  # an effect schema 1 cannot apply
    assert ok(sb.admin("PUT", "/v1/admin/catalog", json=newer))["schema"] == 2
    for headers in ({}, {"X-Credit-Check-Schema": "1"}):
        body = ok(sb.get("/v1/catalog", headers=headers))
        assert body["upgrade_required"] is True
        assert (body["serial"], body["schema"]) == (2, 1)
        wave1 = body["catalog"]
        assert wave1["version"] == "2027.1"
        codes = [m["code"] for m in wave1["measures"]]
        assert newer["measures"][1]["code"] not in codes
        assert "franchise" not in wave1["measures"][0]["scenarios"]
        verify(load_public_key(sb.signer.public_key),
               catalog_message_v2(wave1, serial=2, epoch=1, schema=1),
               body["signature_v2"], "catalogue v2")
    current = ok(sb.get("/v1/catalog", headers={"X-Credit-Check-Schema": "2"}))
    assert (current["upgrade_required"], current["serial"], current["schema"]) == (False, 2, 2)
    assert current["catalog"]["measures"][1]["effect"] == "suspend_license"
    assert ok(sb.get("/v1/capabilities"))["catalog_schema"] == 2
    for bad in ("0", "two", "-1", "1.5", "9" * 10):
        assert_problem(sb.get("/v1/catalog", headers={"X-Credit-Check-Schema": bad}), 400,
                       "X-Credit-Check-Schema")


def test_admin_epoch_raises_the_epoch_in_every_signed_answer(sb: Sandbox) -> None:
    assert ok(sb.admin("POST", "/v1/admin/epoch")) == {"epoch": 2}
    assert ok(sb.admin("POST", "/v1/admin/epoch")) == {"epoch": 3}
    body = snapshot(sb)
    assert body["epoch"] == 3
    verify_v2(sb, body)
    assert ok(sb.get("/v1/catalog"))["epoch"] == 3
    assert ok(sb.get("/v1/capabilities"))["epoch"] == 3
    assert_problem(sb.post("/v1/admin/epoch"), 403)


def test_capabilities_describe_the_service_and_the_calling_key(sb: Sandbox) -> None:
    key = sb.new_key("税务局")
    body = ok(sb.get("/v1/capabilities", key["api_key"]))
    assert body == {"protocol": "1.1", "catalog_schema": 2, "epoch": 1,
                    "record_kinds": ["decision", "outcome", "post_check", "rescreen",
                                     "commitment", "commitment_fulfilled",
                                     "commitment_waived", "commitment_breached",
                                     "case_opened"],
                    "receipts": True, "staged_catalog": None,
                    "key": {"key_id": key["key_id"], "department": "税务局",
                            "allow_persons": False}}
    assert ok(sb.get("/v1/capabilities", sb.admin_key))["key"] is None
    assert_problem(sb.client.get("/v1/capabilities"), 401)


# -- §9.3 deltas that drive re-screening ----------------------------------------------------


def test_delta_names_changed_subjects_and_lifted_entries(sb: Sandbox) -> None:
    red = SHOWCASE["a_grade_org"]  # already in the set
    court = SHOWCASE["court_defaulter_org"]
    tax = SHOWCASE["tax_violator_org"]
    newcomer = org_id(4401)
    v0 = snapshot(sb)["version"]
    ok(sb.admin("POST", "/v1/admin/entries", json={"entries": [
        entry("rs-1", red, list_code="market.serious_violation"), entry("rs-2", newcomer)]}))
    ok(sb.admin("POST", "/v1/admin/entries/demo-00001/status",
                json={"status": "objection_pending", "reason": "objection_raised"}))
    tax_entry = ok(sb.get(f"/v1/subjects/{tax}"))["entries"][0]["entry_id"]
    ok(sb.admin("POST", f"/v1/admin/entries/{tax_entry}/status",
                json={"status": "removed", "reason": "objection_upheld_wrong"}))
    delta = snapshot(sb, v0)
    verify_v2(sb, delta)
    assert prefixes(delta["added"]) == {id_prefix(newcomer)}
    # The demo's director of the tax violator was in the set through it (P-009's via role),
    # and so was the organisation that person directs.
    assert prefixes(delta["removed"]) == {id_prefix(tax), id_prefix(SHOWCASE["director"]),
                                          id_prefix(SHOWCASE["director_org"])}
    assert prefixes(delta["changed"]) == {id_prefix(red), id_prefix(court),
                                          id_prefix(SHOWCASE["court_defaulter_rep"])}
    assert delta["lifted"] == [tax_entry]
    # One step alone: the objection only.
    step = snapshot(sb, v0 + 1)
    assert prefixes(step["changed"]) == {id_prefix(court),
                                         id_prefix(SHOWCASE["court_defaulter_rep"])}
    assert step["lifted"] == [tax_entry] and step["added"] == ""
    # Changed and lifted are signed: dropping either breaks signature_v2.
    for field, value in (("changed", ""), ("lifted", [])):
        with pytest.raises(InvalidServiceData):
            verify_v2(sb, {**delta, field: value})


def test_repair_and_plain_removal_are_not_lifted(sb: Sandbox) -> None:
    v0 = snapshot(sb)["version"]
    for entry_id, status, reason in (("demo-00003", "repaired", "repaired"),
                                     ("demo-00004", "removed", "removed"),
                                     ("demo-00005", "removed", None)):
        body = {"status": status} if reason is None else {"status": status, "reason": reason}
        ok(sb.admin("POST", f"/v1/admin/entries/{entry_id}/status", json=body))
    delta = snapshot(sb, v0)
    assert delta["lifted"] == [] and delta["removed"] != ""


def test_status_reason_is_validated(sb: Sandbox) -> None:
    url = "/v1/admin/entries/demo-00001/status"
    assert_problem(sb.admin("POST", url, json={"status": "removed", "reason": "because"}), 422,
                   "reason")
    assert_problem(sb.admin("POST", url, json={"status": "active",
                                               "reason": "objection_upheld_wrong"}),
                   422, "objection_upheld_wrong", "removed")
    assert ok(sb.admin("POST", url, json={"status": "active",
                                          "reason": "objection_rejected"}))["status"] == "active"


def test_b64d_of_changed_is_packed_prefixes(sb: Sandbox) -> None:
    v0 = snapshot(sb)["version"]
    ok(sb.admin("POST", "/v1/admin/entries/demo-00001/status",
                json={"status": "objection_pending"}))
    changed = b64d(snapshot(sb, v0)["changed"])
    assert len(changed) % 4 == 0 and changed
    assert unpack_prefixes(changed) == sorted(unpack_prefixes(changed))
