"""The sandbox list service application (protocol v1) through Starlette's TestClient, on a
demo database: authentication, lookups, signed snapshot and catalogue, admin imports and
status changes, feedback intake and stats, and bad input everywhere; plus one run of the
real ``credit-check serve`` command."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _sandbox_app_support import (
    PROBLEM,
    Sandbox,
    TestClient,
    assert_problem,
    entry,
    feedback_records,
    org_id,
)

from credit_check._crypto import (
    catalog_message,
    feedback_key,
    id_prefix,
    load_public_key,
    pack_prefixes,
    record_hmac,
    snapshot_message,
    unpack_prefixes,
    verify,
)
from credit_check._models import CST
from credit_check._server import create_app, open_sandbox
from credit_check._server._demo import SHOWCASE, demo_catalog

LISTED = ["court_defaulter_org", "wage_arrears_org", "safety_violator_org", "watch_org",
          "a_grade_org", "red_and_black_org", "tax_violator_org", "objection_tax_org",
          "objection_court_org", "lapsed_org", "black_person"]
NOT_LISTED = ["repaired_org", "expired_org", "clean_3y_org", "clean_recent_org", "unknown_org",
              "new_org_with_listed_rep"]


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    store, signer, admin_key, demo_key = open_sandbox(tmp_path / "s.db", demo=True)
    app = create_app(store, signer, admin_key)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Sandbox(client, store, signer, admin_key, demo_key)
    store.close()


def full_snapshot(sb: Sandbox) -> tuple[dict[str, Any], set[int]]:
    resp = sb.get("/v1/snapshot")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    prefixes = unpack_prefixes(base64.b64decode(body["prefixes"]))
    return body, set(prefixes)


def verify_snapshot(sb: Sandbox, body: dict[str, Any]) -> None:
    verify(load_public_key(sb.signer.public_key),
           snapshot_message(body["version"], body["checksum"]), body["signature"], "snapshot")


def entries_count(sb: Sandbox) -> int:
    resp = sb.admin("GET", "/v1/admin/stats")
    assert resp.status_code == 200, resp.text
    count: int = resp.json()["entries"]
    return count


def lookup(sb: Sandbox, subject_id: str, key: str | None = None) -> dict[str, Any]:
    resp = sb.get(f"/v1/subjects/{subject_id}", key)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# -- authentication ------------------------------------------------------------------------


def test_missing_wrong_or_revoked_key_is_401(sb: Sandbox) -> None:
    path = f"/v1/subjects/{SHOWCASE['court_defaulter_org']}"
    assert_problem(sb.client.get(path), 401, "Authorization")
    for header in ("Basic abc", "Bearer", "Bearer   ", "cc_demo", "Bearer wrong-key"):
        assert_problem(sb.client.get(path, headers={"Authorization": header}), 401)
    key = sb.new_key("市场监督管理局")
    assert key["api_key"] and key["key_id"] and key["allow_persons"] is False
    assert sb.get(path, key["api_key"]).status_code == 200
    resp = sb.admin("POST", f"/v1/admin/keys/{key['key_id']}/revoke")
    assert resp.status_code == 200 and resp.json()["revoked"] is True
    assert_problem(sb.get(path, key["api_key"]), 401, "revoked")
    assert_problem(sb.admin("POST", "/v1/admin/keys/k_nope/revoke"), 404)
    # A department key is not an admin key even for a wrong admin key.
    assert_problem(sb.client.get("/v1/admin/stats", headers={"Authorization": "Bearer x"}), 401)


ADMIN_CALLS = [
    ("PUT", "/v1/admin/catalog"),
    ("POST", "/v1/admin/entries"),
    ("POST", "/v1/admin/entries/demo-00001/status"),
    ("POST", "/v1/admin/keys"),
    ("POST", "/v1/admin/keys/k_x/revoke"),
    ("GET", "/v1/admin/feedback"),
    ("GET", "/v1/admin/stats"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_CALLS)
def test_department_key_on_an_admin_call_is_403(sb: Sandbox, method: str, path: str) -> None:
    kw: dict[str, Any] = {} if method == "GET" else {"json": {}}
    resp = sb.client.request(method, path, headers={"Authorization": f"Bearer {sb.demo_key}"},
                             **kw)
    assert_problem(resp, 403, "admin")
    assert_problem(sb.client.request(method, path, **kw), 401)


def test_keys_are_stored_hashed(sb: Sandbox, tmp_path: Path) -> None:
    key = sb.new_key("税务局", allow_persons=True)
    sb.store.close()  # let SQLite write everything out (a checkpoint of the WAL)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("s.db")
                   and not p.name.endswith("signing-key"))
    assert b"\xe7\xa8\x8e\xe5\x8a\xa1\xe5\xb1\x80" in raw  # the department name is there
    for secret in (key["api_key"], sb.demo_key, sb.admin_key):
        assert secret.encode() not in raw
        assert hashlib.sha256(secret.encode()).hexdigest().encode() != secret.encode()
    assert hashlib.sha256(key["api_key"].encode()).hexdigest().encode() in raw
    assert lookup(sb, SHOWCASE["court_defaulter_org"], key["api_key"])["entries"]


def test_person_entries_only_for_keys_allowed_persons(sb: Sandbox) -> None:
    person = SHOWCASE["black_person"]
    plain = sb.new_key("住建局")["api_key"]
    allowed = sb.new_key("法院", allow_persons=True)["api_key"]
    hidden = lookup(sb, person, plain)
    assert hidden["entries"] == [] and hidden["subject"]["name"] is None
    assert hidden["subject"]["kind"] == "person"
    assert hidden["withheld"] == [{"role": "subject", "reason": "key_not_allowed_persons"}]
    for key in (sb.demo_key, allowed):
        shown = lookup(sb, person, key)
        assert [e["subject_id"] for e in shown["entries"]] == [person]
        assert shown["entries"][0]["status"] == "active" and shown["subject"]["name"]
        assert shown["withheld"] == []
    # Through the batch call too; the representative of an organisation is withheld whole:
    # no id, no name, not in the entries either.
    org = SHOWCASE["court_defaulter_org"]
    rep = SHOWCASE["court_defaulter_rep"]
    resp = sb.post("/v1/subjects:batch", plain, json={"ids": [person, org]})
    assert resp.status_code == 200
    first, second = resp.json()["results"]
    assert first["entries"] == [] and first["withheld"][0]["role"] == "subject"
    assert second["entries"] and second["subject"]["legal_representative"] is None
    assert second["withheld"] == [{"role": "legal_representative",
                                   "reason": "key_not_allowed_persons"}]
    assert rep not in resp.text
    assert all(e["legal_representative_id"] is None for e in second["entries"])


# -- lookups -------------------------------------------------------------------------------


def test_showcase_lookups(sb: Sandbox) -> None:
    statuses = {}
    for name in ("court_defaulter_org", "objection_tax_org", "repaired_org", "expired_org",
                 "wage_arrears_org"):
        body = lookup(sb, SHOWCASE[name])
        assert body["subject"]["id"] == SHOWCASE[name]
        assert body["subject"]["kind"] == "organization" and body["subject"]["name"]
        statuses[name] = [e["status"] for e in body["entries"]]
    # A department key gets counting entries only (§9.1); the admin key the history.
    assert statuses == {"court_defaulter_org": ["active"],
                        "objection_tax_org": ["objection_pending"],
                        "repaired_org": [], "expired_org": [],
                        "wage_arrears_org": ["active"]}
    for name, status in (("repaired_org", "repaired"), ("expired_org", "expired")):
        history = lookup(sb, SHOWCASE[name], sb.admin_key)
        assert [e["status"] for e in history["entries"]] == [status]
    red_black = lookup(sb, SHOWCASE["red_and_black_org"])
    assert sorted(e["list_kind"] for e in red_black["entries"]) == ["black", "red"]

    court = lookup(sb, SHOWCASE["court_defaulter_org"])
    rep = court["subject"]["legal_representative"]
    assert rep["id"] == SHOWCASE["court_defaulter_rep"] and rep["name"]
    assert court["entries"][0]["list_code"] == "court.judgment_defaulter"
    assert court["entries"][0]["legal_representative_id"] == SHOWCASE["court_defaulter_rep"]
    assert court["data_version"] == str(sb.store.index.version)
    as_of = dt.datetime.fromisoformat(court["as_of"])
    assert as_of.tzinfo is not None
    assert abs(as_of - dt.datetime.now(CST)) < dt.timedelta(minutes=1)

    clean = lookup(sb, SHOWCASE["clean_3y_org"])
    assert clean["entries"] == []
    since = dt.date.fromisoformat(clean["clean_since"][:10])
    assert dt.date.today() - since > dt.timedelta(days=3 * 365)
    assert lookup(sb, SHOWCASE["clean_recent_org"])["clean_since"]


def test_invalid_subject_id_is_400_naming_the_problem(sb: Sandbox) -> None:
    bad = SHOWCASE["court_defaulter_org"][:-1] + (
        "0" if SHOWCASE["court_defaulter_org"][-1] != "0" else "1")
    body = assert_problem(sb.get(f"/v1/subjects/{bad}"), 400, "check character")
    assert body["title"] == "Invalid subject identifier"
    for raw in ("x", "123", "%00", "9" * 300, "%E2%80%8B"):
        assert_problem(sb.get(f"/v1/subjects/{raw}"), 400)


def test_unknown_valid_subject_answers_200_with_no_entries(sb: Sandbox) -> None:
    body = lookup(sb, SHOWCASE["unknown_org"])
    assert body["entries"] == [] and body["clean_since"] is None
    fresh = lookup(sb, org_id(4242))
    assert fresh["entries"] == [] and fresh["subject"] == {
        "id": org_id(4242), "kind": "organization", "name": None, "legal_representative": None}


def test_lookup_normalises_a_lowercase_uscc(sb: Sandbox) -> None:
    sid = SHOWCASE["court_defaulter_org"]  # has letters, so lower() changes it
    assert sid.lower() != sid
    resp = sb.get(f"/v1/subjects/{sid.lower()}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["subject"]["id"] == sid and resp.json()["entries"]


def test_batch_keeps_the_order(sb: Sandbox) -> None:
    ids = [SHOWCASE["clean_3y_org"], SHOWCASE["court_defaulter_org"], org_id(7),
           SHOWCASE["black_person"], SHOWCASE["court_defaulter_org"]]
    resp = sb.post("/v1/subjects:batch", json={"ids": ids})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["subject"]["id"] for r in results] == ids
    assert [bool(r["entries"]) for r in results] == [False, True, False, True, True]
    many = [org_id(i) for i in range(1000)]
    resp = sb.post("/v1/subjects:batch", json={"ids": many})
    assert resp.status_code == 200
    assert [r["subject"]["id"] for r in resp.json()["results"]] == many


def test_batch_limits_and_invalid_ids(sb: Sandbox) -> None:
    resp = sb.post("/v1/subjects:batch", json={"ids": [org_id(i) for i in range(1001)]})
    assert 400 <= resp.status_code < 500
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert_problem(sb.post("/v1/subjects:batch", json={"ids": []}), 422)
    ids = [org_id(1), "bogus", org_id(2), org_id(3)[:-1] + "?"]
    body = assert_problem(sb.post("/v1/subjects:batch", json={"ids": ids}), 400, "ids[1]",
                          "ids[3]")
    assert [e["field"] for e in body["errors"]] == ["ids[1]", "ids[3]"]
    assert all(e["problem"] for e in body["errors"])


# -- snapshot ------------------------------------------------------------------------------


def test_full_snapshot_is_signed_and_holds_the_listed_subjects(sb: Sandbox) -> None:
    body, prefixes = full_snapshot(sb)
    assert body["full"] is True and body["version"] == sb.store.index.version
    verify_snapshot(sb, body)
    packed = base64.b64decode(body["prefixes"])
    assert body["checksum"] == hashlib.sha256(packed).hexdigest()
    assert packed == pack_prefixes(sorted(prefixes))  # sorted, de-duplicated
    assert body["count"] == len(prefixes) == len(packed) // 4
    for name in [*LISTED, "court_defaulter_rep"]:
        assert id_prefix(SHOWCASE[name]) in prefixes, name
    for name in NOT_LISTED:
        assert id_prefix(SHOWCASE[name]) not in prefixes, name
    with pytest.raises(Exception, match="signature"):
        verify(load_public_key(sb.signer.public_key),
               snapshot_message(body["version"] + 1, body["checksum"]), body["signature"],
               "snapshot")


def test_snapshot_delta_after_admin_changes(sb: Sandbox) -> None:
    before, old = full_snapshot(sb)
    v0 = before["version"]
    assert sb.get(f"/v1/snapshot?since={v0}").json()["added"] == ""  # empty delta
    new_org = org_id(31337)
    resp = sb.admin("POST", "/v1/admin/entries", json={"entries": [entry("t-1", new_org)]})
    assert resp.status_code == 200 and resp.json()["created"] == 1
    court = lookup(sb, SHOWCASE["court_defaulter_org"])["entries"][0]["entry_id"]
    resp = sb.admin("POST", f"/v1/admin/entries/{court}/status", json={"status": "repaired"})
    assert resp.status_code == 200, resp.text
    after, new = full_snapshot(sb)
    assert after["version"] == v0 + 2

    resp = sb.get("/v1/snapshot", params={"since": str(v0)})
    assert resp.status_code == 200, resp.text
    delta = resp.json()
    assert (delta["full"], delta["since"], delta["version"]) == (False, v0, v0 + 2)
    added = set(unpack_prefixes(base64.b64decode(delta["added"])))
    removed = set(unpack_prefixes(base64.b64decode(delta["removed"])))
    assert added == {id_prefix(new_org)}
    assert removed == {id_prefix(SHOWCASE["court_defaulter_org"]),
                       id_prefix(SHOWCASE["court_defaulter_rep"])}
    result = (old - removed) | added
    assert result == new
    assert delta["checksum"] == hashlib.sha256(pack_prefixes(sorted(result))).hexdigest()
    assert delta["checksum"] == after["checksum"] and delta["count"] == len(result)
    verify_snapshot(sb, delta)

    # One step at a time gives the same result.
    step = sb.get(f"/v1/snapshot?since={v0 + 1}").json()
    assert set(unpack_prefixes(base64.b64decode(step["removed"]))) == removed
    assert step["added"] == ""


def test_snapshot_since_too_old_unknown_or_future_is_410(sb: Sandbox) -> None:
    v = sb.store.index.version
    for since in (str(v + 1), "999999999", str(10**17)):
        assert_problem(sb.get(f"/v1/snapshot?since={since}"), 410)
    # A catalogue change rebuilds the set and drops the older deltas.
    catalog = demo_catalog()
    catalog["version"] = "2026.9"
    assert sb.admin("PUT", "/v1/admin/catalog", json=catalog).status_code == 200
    assert sb.store.index.version == v + 1
    assert_problem(sb.get(f"/v1/snapshot?since={v}"), 410, "full snapshot")
    assert_problem(sb.get("/v1/snapshot?since=0"), 410)
    assert sb.get(f"/v1/snapshot?since={v + 1}").status_code == 200


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "1e3", "", " 1", "0x10", "9" * 40, "٣"])
def test_snapshot_since_not_a_number_is_400(sb: Sandbox, since: str) -> None:
    assert_problem(sb.get("/v1/snapshot", params={"since": since}), 400, "since")


# -- catalogue -----------------------------------------------------------------------------


def test_catalog_is_signed_with_an_etag(sb: Sandbox) -> None:
    resp = sb.get("/v1/catalog")
    assert resp.status_code == 200
    body = resp.json()
    assert body["catalog"]["version"] == demo_catalog()["version"]
    verify(load_public_key(sb.signer.public_key), catalog_message(body["catalog"]),
           body["signature"], "catalogue")
    etag = resp.headers["etag"]
    assert etag.startswith(f'"{body["catalog"]["version"]}-') and etag.endswith('"')
    resp = sb.get("/v1/catalog", headers={"If-None-Match": etag})
    assert resp.status_code == 304 and resp.headers["etag"] == etag and resp.content == b""
    assert sb.get("/v1/catalog", headers={"If-None-Match": '"old-1"'}).status_code == 200
    for asked in (f'"old-1", {etag}', f"W/{etag}", "*"):
        assert sb.get("/v1/catalog", headers={"If-None-Match": asked}).status_code == 304
    keys = sb.get("/v1/keys").json()["keys"]
    assert keys[0]["public_key"] == sb.signer.public_key and keys[0]["alg"] == "Ed25519"


def test_put_catalog_refuses_a_bad_one_and_keeps_the_old(sb: Sandbox) -> None:
    etag = sb.get("/v1/catalog").headers["etag"]
    version = sb.store.index.version
    bad = demo_catalog()
    bad["version"] = "2099.1"
    bad["measures"][0]["list_codes"] = ["no.such.list"]
    assert_problem(sb.admin("PUT", "/v1/admin/catalog", json=bad), 422, "no.such.list")
    junk: Any
    for junk in ([], "x", {"version": "1"}, 5, {**demo_catalog(), "extra": 1}):
        assert_problem(sb.admin("PUT", "/v1/admin/catalog", json=junk), 422)
    assert_problem(sb.admin("PUT", "/v1/admin/catalog", content=b"{"), 400)
    assert sb.get("/v1/catalog").headers["etag"] == etag
    assert sb.store.index.version == version


def test_put_catalog_replaces_it(sb: Sandbox) -> None:
    etag = sb.get("/v1/catalog").headers["etag"]
    version = sb.get("/v1/snapshot").json()["version"]
    good = demo_catalog()
    good["version"] = "2026.2"
    good["measures"] = [m for m in good["measures"] if m["target"] != "legal_representative"]
    resp = sb.admin("PUT", "/v1/admin/catalog", json=good)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"version": "2026.2", "serial": 2, "snapshot_version": version + 1}
    resp = sb.get("/v1/catalog")
    assert resp.headers["etag"] != etag and resp.json()["catalog"]["version"] == "2026.2"
    body, prefixes = full_snapshot(sb)
    assert body["version"] == version + 1
    verify_snapshot(sb, body)
    # No measure targets the legal representative any more, so the rep leaves the set.
    assert id_prefix(SHOWCASE["court_defaulter_rep"]) not in prefixes
    assert id_prefix(SHOWCASE["court_defaulter_org"]) in prefixes


# -- admin: entries ------------------------------------------------------------------------


def test_import_json_upserts_by_entry_id(sb: Sandbox) -> None:
    count = entries_count(sb)
    a, b = org_id(501), org_id(502)
    resp = sb.admin("POST", "/v1/admin/entries",
                    json={"entries": [entry("imp-1", a), entry("imp-2", b, status="repaired")]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 2 and resp.json()["updated"] == 0
    assert entries_count(sb) == count + 2
    resp = sb.admin("POST", "/v1/admin/entries",
                    json={"entries": [entry("imp-1", a, name="新名称有限公司（虚构）")]})
    assert (resp.json()["created"], resp.json()["updated"]) == (0, 1)
    assert entries_count(sb) == count + 2
    assert [e["name"] for e in lookup(sb, a)["entries"]] == ["新名称有限公司（虚构）"]
    assert lookup(sb, b)["entries"] == []
    assert lookup(sb, b, sb.admin_key)["entries"][0]["status"] == "repaired"
    _, prefixes = full_snapshot(sb)
    assert id_prefix(a) in prefixes and id_prefix(b) not in prefixes


CSV_HEADER = ("entry_id,list_code,list_kind,subject_id,subject_kind,name,issuing_department,"
              "effective_from,effective_until,status,legal_representative_id\n")


def test_import_csv(sb: Sandbox) -> None:
    count = entries_count(sb)
    a, b = org_id(601), org_id(602)
    rep = SHOWCASE["black_person"]
    text = (CSV_HEADER
            + f"csv-1,court.judgment_defaulter,black,{a},organization,甲公司,某法院,2025-01-01,,"
              f"active,{rep}\n"
            + f"csv-2,tax.a_grade,red,{b},organization,\"乙公司, 分部\",某税务局,2025-02-01,"
              "2027-01-01,active,\n")
    resp = sb.admin("POST", "/v1/admin/entries", content=text.encode("utf-8-sig"),
                    headers={"Content-Type": "text/csv; charset=utf-8"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 2 and entries_count(sb) == count + 2
    first = lookup(sb, a)
    assert first["entries"][0]["effective_until"] is None
    assert first["subject"]["legal_representative"]["id"] == rep
    second = lookup(sb, b)["entries"][0]
    assert second["name"] == "乙公司, 分部" and second["effective_until"].startswith("2027-01-01")
    _, prefixes = full_snapshot(sb)
    assert id_prefix(rep) in prefixes and id_prefix(a) in prefixes


def test_invalid_json_entries_import_nothing(sb: Sandbox) -> None:
    count, version = entries_count(sb), sb.store.index.version
    good = entry("bad-0", org_id(701))
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([good, {**entry("bad-1", org_id(702)), "status": "gone"}], "entries[1].status"),
        ([good, {k: v for k, v in entry("bad-1", org_id(702)).items()
                 if k != "subject_kind"}], "entries[1].subject_kind"),
        ([good, entry("bad-1", org_id(702)[:-2] + "00")], "entries[1].subject_id"),
        ([good, entry("bad-1", SHOWCASE["black_person"])], "entries[1].subject_kind"),
        ([good, entry("bad-1", org_id(703).lower() if org_id(703).lower() != org_id(703)
                      else " " + org_id(703))], "entries[1].subject_id"),
        ([good, entry("bad-1", org_id(704), effective_from="yesterday")],
         "entries[1].effective_from"),
        ([good, {**entry("bad-1", org_id(705)), "efective_until": "2026-01-01"}],
         "entries[1].efective_until"),
    ]
    for entries, field in cases:
        body = assert_problem(sb.admin("POST", "/v1/admin/entries", json={"entries": entries}),
                              422, "nothing was imported")
        assert any(field in e["field"] for e in body["errors"]), (field, body)
    resp = sb.admin("POST", "/v1/admin/entries",
                    json={"entries": [good, entry("bad-0", org_id(707))]})
    assert_problem(resp, 422, "entries[1].entry_id", "entries[0].entry_id")
    resp = sb.admin("POST", "/v1/admin/entries",
                    json={"entries": [good, entry("bad-2", org_id(706), list_code="no.list")]})
    assert_problem(resp, 422, "no.list", "entries[1]")
    assert entries_count(sb) == count and sb.store.index.version == version
    assert lookup(sb, org_id(701))["entries"] == []


def test_invalid_csv_rows_import_nothing(sb: Sandbox) -> None:
    count = entries_count(sb)
    good = f"ok-1,court.judgment_defaulter,black,{org_id(801)},organization,甲,某法院,2025-01-01,,active,\n"
    cases = [
        (CSV_HEADER + good + f"ok-2,court.judgment_defaulter,black,{org_id(802)},organization,"
         "乙,某法院,not-a-date,,active,\n", "line 3: effective_from"),
        (CSV_HEADER + good + "\n" + f"ok-2,court.judgment_defaulter,black,{org_id(802)[:-2]}00,"
         "organization,乙,某法院,2025-01-01,,active,\n", "line 4: subject_id"),
        (CSV_HEADER + good + good, "line 3: entry_id"),
        (CSV_HEADER + good + "short,row\n", "line 3"),
        (CSV_HEADER + good + good.rstrip("\n") + ",extra\n", "line 3"),
        (CSV_HEADER.replace("effective_until", "efective_until") + good, "efective_until"),
        ("entry_id,name\n" + "x,y\n", "subject_id"),
        (CSV_HEADER + good + f"ok-3,court.judgment_defaulter,black,{org_id(803)},organization,"
         "丙,某法院,2025-01-01,,unknown,\n", "line 3: status"),
    ]
    for text, needle in cases:
        resp = sb.admin("POST", "/v1/admin/entries", content=text.encode(),
                        headers={"Content-Type": "text/csv"})
        assert_problem(resp, 422, needle)
    resp = sb.admin("POST", "/v1/admin/entries", content=b"\xff\xfe" + CSV_HEADER.encode(),
                    headers={"Content-Type": "text/csv"})
    assert 400 <= resp.status_code < 500
    assert entries_count(sb) == count
    assert lookup(sb, org_id(801))["entries"] == []


# -- admin: status changes -----------------------------------------------------------------


def test_objection_rejected_and_back_to_active(sb: Sandbox) -> None:
    sid = org_id(901)
    sb.admin("POST", "/v1/admin/entries",
             json={"entries": [entry("obj-1", sid, effective_until="2027-01-01")]})
    url = "/v1/admin/entries/obj-1/status"
    resp = sb.admin("POST", url, json={"status": "objection_pending"})
    assert resp.status_code == 200 and resp.json()["status"] == "objection_pending"
    assert lookup(sb, sid)["entries"][0]["status"] == "objection_pending"
    assert id_prefix(sid) in full_snapshot(sb)[1]
    # The objection is rejected: active again, and the listing runs longer.
    resp = sb.admin("POST", url, json={"status": "active", "effective_until": "2028-06-30"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "active"
    assert resp.json()["effective_until"].startswith("2028-06-30T00:00:00+08:00")
    shown = lookup(sb, sid)["entries"][0]
    assert shown["status"] == "active" and shown["effective_until"].startswith("2028-06-30")
    assert id_prefix(sid) in full_snapshot(sb)[1]


def test_repair_removes_the_prefix_at_once(sb: Sandbox) -> None:
    sid = SHOWCASE["wage_arrears_org"]
    entry_id = lookup(sb, sid)["entries"][0]["entry_id"]
    assert id_prefix(sid) in full_snapshot(sb)[1]
    resp = sb.admin("POST", f"/v1/admin/entries/{entry_id}/status", json={"status": "repaired"})
    assert resp.status_code == 200
    assert id_prefix(sid) not in full_snapshot(sb)[1]
    assert lookup(sb, sid)["entries"] == []
    assert lookup(sb, sid, sb.admin_key)["entries"][0]["status"] == "repaired"
    # Setting the same status again changes nothing in the set.
    sb.admin("POST", f"/v1/admin/entries/{entry_id}/status", json={"status": "repaired"})
    sb.admin("POST", f"/v1/admin/entries/{entry_id}/status", json={"status": "removed"})
    assert id_prefix(sid) not in full_snapshot(sb)[1]
    sb.admin("POST", f"/v1/admin/entries/{entry_id}/status", json={"status": "active"})
    sb.admin("POST", f"/v1/admin/entries/{entry_id}/status", json={"status": "active"})
    assert id_prefix(sid) in full_snapshot(sb)[1]


def test_status_change_errors(sb: Sandbox) -> None:
    assert_problem(sb.admin("POST", "/v1/admin/entries/nope/status", json={"status": "repaired"}),
                   404, "nope")
    body: Any
    for body in ({"status": "bogus"}, {}, {"status": "active", "why": 1},
                 {"status": "active", "effective_until": "soon"}, {"status": 3}, [], "active"):
        assert_problem(sb.admin("POST", "/v1/admin/entries/demo-00001/status", json=body), 422)
    assert lookup(sb, SHOWCASE["court_defaulter_org"])["entries"][0]["status"] == "active"


# -- feedback ------------------------------------------------------------------------------


def test_feedback_accepted_then_duplicates(sb: Sandbox) -> None:
    records = feedback_records(sb.demo_key, 3)
    ids = [r["record_id"] for r in records]
    resp = sb.post("/v1/feedback", json={"records": records})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"accepted": ids, "duplicates": [], "rejected": []}
    resp = sb.post("/v1/feedback", json={"records": records})
    assert resp.json() == {"accepted": [], "duplicates": ids, "rejected": []}
    assert sb.admin("GET", "/v1/admin/stats").json()["duplicates"] == 3
    assert sb.post("/v1/feedback", json={"records": []}).json()["accepted"] == []


def test_a_record_repeated_in_one_batch_is_stored_once(sb: Sandbox) -> None:
    records = feedback_records(sb.demo_key, 3)
    ids = [r["record_id"] for r in records]
    sb.post("/v1/feedback", json={"records": records[:1]})
    resp = sb.post("/v1/feedback", json={"records": [records[1], records[0], records[1],
                                                     records[2]]})
    assert resp.json() == {"accepted": [ids[1], ids[2]], "duplicates": [ids[0], ids[1]],
                           "rejected": []}
    assert sb.admin("GET", "/v1/admin/stats").json()["duplicates"] == 2
    assert sb.admin("GET", "/v1/admin/feedback").json()["records"] == records


def test_bad_feedback_records_are_rejected_one_by_one(sb: Sandbox) -> None:
    records = feedback_records(sb.demo_key, 6)
    records[1]["hmac"] = "0" * 64
    records[2]["note"] = "tampered after signing"
    records[3] = {"record_id": "junk", "kind": "nonsense"}
    other = sb.new_key("别的局")["api_key"]
    records[4] = feedback_records(other, 1)[0]
    records.append("not an object")  # type: ignore[arg-type]
    resp = sb.post("/v1/feedback", json={"records": records})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == [records[0]["record_id"], records[5]["record_id"]]
    assert body["duplicates"] == []
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4, 6]
    assert "hmac" in rejected[1]["reason"] and "hmac" in rejected[2]["reason"]
    assert rejected[1]["record_id"] == records[1]["record_id"]
    assert rejected[3]["record_id"] == "junk" and rejected[6]["record_id"] is None
    assert all(r["reason"] for r in body["rejected"])
    # The other department's record is accepted with its own key.
    assert sb.post("/v1/feedback", other, json={"records": [records[4]]}).json()["accepted"]


def test_feedback_limits_and_shape(sb: Sandbox) -> None:
    records = feedback_records(sb.demo_key, 1) * 501
    assert_problem(sb.post("/v1/feedback", json={"records": records}), 413, "500")
    body: Any
    for body in ({}, {"records": "x"}, [], {"records": None}):
        assert_problem(sb.post("/v1/feedback", json=body), 422, "records")
    assert_problem(sb.post("/v1/feedback", sb.admin_key, json={"records": []}), 403)
    assert sb.admin("GET", "/v1/admin/feedback").json()["records"] == []


def test_admin_feedback_and_since(sb: Sandbox) -> None:
    records = feedback_records(sb.demo_key, 4)
    sb.post("/v1/feedback", json={"records": records})
    got = sb.admin("GET", "/v1/admin/feedback").json()["records"]
    assert [r["record_id"] for r in got] == [r["record_id"] for r in records]
    assert got[0] == records[0]
    now = dt.datetime.now(dt.UTC)
    for since, expected in (
        ((now - dt.timedelta(minutes=5)).isoformat(), 4),
        ((now - dt.timedelta(minutes=5)).astimezone(CST).isoformat(), 4),
        ((now + dt.timedelta(minutes=5)).isoformat(), 0),
        ((now + dt.timedelta(minutes=5)).astimezone(CST).isoformat(), 0),
        ("2020-01-01", 4),
        ((now + dt.timedelta(days=2)).astimezone(CST).date().isoformat(), 0),
    ):
        resp = sb.admin("GET", "/v1/admin/feedback", params={"since": since})
        assert resp.status_code == 200, resp.text
        assert len(resp.json()["records"]) == expected, since
    for since in ("yesterday", "2026-13-01", "", "9999-12-31T23:00:00-12:00",
                  "0001-01-01T00:00:00+14:00"):
        assert_problem(sb.admin("GET", "/v1/admin/feedback", params={"since": since}), 400,
                       "since")


def test_stats_by_scenario_department_and_day(sb: Sandbox) -> None:
    other = sb.new_key("住建局")["api_key"]
    a = feedback_records(sb.demo_key, 3, department="财政局", scenario="procurement")
    b = feedback_records(other, 2, department="住建局", scenario="licensing")
    assert len(sb.post("/v1/feedback", json={"records": a}).json()["accepted"]) == 3
    assert len(sb.post("/v1/feedback", other, json={"records": b}).json()["accepted"]) == 2
    stats = sb.admin("GET", "/v1/admin/stats").json()
    # records i = 0, 2 carry a match; every record one measure per match
    assert stats["total"] == {"checks": 5, "hits": 3, "measures": 3, "degraded": 0}
    by_scenario = {r["scenario"]: (r["checks"], r["hits"], r["measures"])
                   for r in stats["by_scenario"]}
    assert by_scenario == {"procurement": (3, 2, 2), "licensing": (2, 1, 1)}
    by_department = {r["department"]: (r["checks"], r["hits"]) for r in stats["by_department"]}
    assert by_department == {"财政局": (3, 2), "住建局": (2, 1)}
    by_day = {r["day"]: r["checks"] for r in stats["by_day"]}
    assert by_day == {"2026-03-01": 2, "2026-03-02": 2, "2026-03-03": 1}
    assert stats["records"] == 5 and stats["version"] == sb.store.index.version
    # Days are China Standard Time days, whatever offset a record's time was written with.
    (late,) = feedback_records(sb.demo_key, 1)
    late["created_at"] = "2026-03-09T20:00:00+00:00"  # 2026-03-10 04:00 CST
    late["hmac"] = record_hmac(feedback_key(sb.demo_key), late)
    assert sb.post("/v1/feedback", json={"records": [late]}).json()["accepted"]
    by_day = {r["day"]: r["checks"] for r in sb.admin("GET", "/v1/admin/stats").json()["by_day"]}
    assert by_day["2026-03-10"] == 1 and "2026-03-09" not in by_day
    (edge,) = feedback_records(sb.demo_key, 1)
    edge["created_at"] = "9999-12-31T23:00:00-12:00"  # past the calendar's end in CST
    edge["hmac"] = record_hmac(feedback_key(sb.demo_key), edge)
    resp = sb.post("/v1/feedback", json={"records": [edge]})
    assert resp.status_code == 200 and resp.json()["accepted"] == [edge["record_id"]]
    assert stats["listed_prefixes"] == full_snapshot(sb)[0]["count"]


# -- bad input everywhere ------------------------------------------------------------------

BODY_CALLS = [
    ("POST", "/v1/subjects:batch", False),
    ("POST", "/v1/feedback", False),
    ("PUT", "/v1/admin/catalog", True),
    ("POST", "/v1/admin/entries", True),
    ("POST", "/v1/admin/entries/demo-00001/status", True),
    ("POST", "/v1/admin/keys", True),
]
BAD_BODIES = [
    b"", b"{", b"{not json}", b"\xff\xfe\x00", b"[1, 2", b"null", b"42", b'"text"', b"[]",
    b'{"ids": 5, "records": 5, "entries": 5, "status": 5, "department": 5}',
    b'{"ids": [1, 2], "records": [1], "entries": [1], "status": [], "department": []}',
    b'{"unknown": true}', b"NaN", b'{"ids": {"a": 1}}', b"[" * 100_000 + b"]" * 100_000,
    b'{"a": "\\ud800"}', b"1" * 5000,
]


@pytest.mark.parametrize(("method", "path", "admin"), BODY_CALLS)
def test_bad_bodies_are_4xx_problems(sb: Sandbox, method: str, path: str, admin: bool) -> None:
    key = sb.admin_key if admin else sb.demo_key
    for raw in BAD_BODIES:
        if path == "/v1/feedback" and raw.startswith(b'{"ids": [1, 2]'):
            continue  # {"records": [1]}: the record is rejected on its own (a 200)
        resp = sb.client.request(method, path, content=raw, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        assert 400 <= resp.status_code < 500, (raw[:40], resp.status_code, resp.text[:300])
        assert resp.headers["content-type"].startswith(PROBLEM), raw[:40]


@pytest.mark.parametrize(("method", "path", "admin"), BODY_CALLS)
def test_oversized_bodies_are_413(sb: Sandbox, method: str, path: str, admin: bool) -> None:
    key = sb.admin_key if admin else sb.demo_key
    limit = 256 * 1024 * 1024 if path == "/v1/admin/entries" else 8 * 1024 * 1024
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
               "Content-Length": str(limit + 1)}
    resp = sb.client.request(method, path, content=b"{}", headers=headers)
    assert_problem(resp, 413)
    if limit <= 8 * 1024 * 1024:  # a body really that large, without a declared length
        def chunks() -> Iterator[bytes]:
            for _ in range(9):
                yield b" " * (1024 * 1024)

        resp = sb.client.request(method, path, content=chunks(), headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        assert_problem(resp, 413)


def test_surrogates_and_odd_text_are_refused_not_500(sb: Sandbox) -> None:
    record = feedback_records(sb.demo_key, 1)[0]
    record["note"] = "\ud800"
    raw = json.dumps({"records": [record, *feedback_records(sb.demo_key, 1)]}).encode()
    resp = sb.post("/v1/feedback", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert [r["index"] for r in resp.json()["rejected"]] == [0]
    assert len(resp.json()["accepted"]) == 1
    bad_entry = entry("sur-1", org_id(111), name="\ud800")
    resp = sb.admin("POST", "/v1/admin/entries", content=json.dumps({"entries": [bad_entry]}),
                    headers={"Content-Type": "application/json"})
    assert_problem(resp, 422)
    resp = sb.admin("POST", "/v1/admin/keys", content=b'{"department": "\\udfff"}',
                    headers={"Content-Type": "application/json"})
    assert 400 <= resp.status_code < 500
    catalog = demo_catalog()
    catalog["lists"][0]["name"] = "\ud800"
    resp = sb.admin("PUT", "/v1/admin/catalog", content=json.dumps(catalog),
                    headers={"Content-Type": "application/json"})
    assert 400 <= resp.status_code < 500
    assert sb.get("/v1/catalog").status_code == 200


def test_non_finite_numbers_are_refused(sb: Sandbox) -> None:
    (record,) = feedback_records(sb.demo_key, 1)
    for bad in (float("nan"), float("inf")):
        record["measures"][0]["params"] = {"x": bad}
        record["hmac"] = record_hmac(feedback_key(sb.demo_key), record)
        resp = sb.post("/v1/feedback", content=json.dumps({"records": [record]}),
                       headers={"Content-Type": "application/json"})
        assert_problem(resp, 400, "JSON")
    raw = json.dumps({"records": [record]}).replace("Infinity", "1e999")
    resp = sb.post("/v1/feedback", content=raw, headers={"Content-Type": "application/json"})
    assert_problem(resp, 400, "range")
    resp = sb.admin("GET", "/v1/admin/feedback")
    assert resp.status_code == 200 and resp.json()["records"] == []


def test_unknown_routes_and_methods_are_problems(sb: Sandbox) -> None:
    assert_problem(sb.get("/v1/nothing"), 404)
    assert_problem(sb.client.delete("/v1/catalog", headers={
        "Authorization": f"Bearer {sb.demo_key}"}), 405)
    resp = sb.client.get("/openapi.json")  # public: no key needed
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert "/v1/capabilities" in resp.json()["paths"]


# -- the real command ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_credit_check_serve_command(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "credit_check._cli", "serve", "--demo", "--port", str(port),
         "--db", str(tmp_path / "cli.db"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["base_url"] == f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        sid = SHOWCASE["court_defaulter_org"]
        while True:
            try:
                resp = requests.get(f"{info['base_url']}/v1/subjects/{sid}", timeout=5,
                                    headers={"Authorization": f"Bearer {info['demo_api_key']}"})
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the sandbox did not start listening"
                time.sleep(0.1)
        assert resp.status_code == 200
        assert [e["status"] for e in resp.json()["entries"]] == ["active"]
        resp = requests.get(f"{info['base_url']}/v1/admin/stats", timeout=5,
                            headers={"Authorization": f"Bearer {info['admin_key']}"})
        assert resp.status_code == 200 and resp.json()["entries"] > 0
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode is not None


def test_reopening_keeps_keys_data_and_version(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store, signer, admin_key, demo_key = open_sandbox(db, demo=True)
    with TestClient(create_app(store, signer, admin_key)) as client:
        sb = Sandbox(client, store, signer, admin_key, demo_key)
        key = sb.new_key("审批局")
        sb.admin("POST", "/v1/admin/entries", json={"entries": [entry("keep-1", org_id(77))]})
        assert sb.post("/v1/feedback", json={"records": feedback_records(demo_key, 2)}
                       ).json()["accepted"]
        before, prefixes = full_snapshot(sb)
        etag = sb.get("/v1/catalog").headers["etag"]
    store.close()
    assert (db.with_name("s.db.signing-key").stat().st_mode & 0o777) == 0o600

    store, signer2, admin2, demo2 = open_sandbox(db, demo=True)
    assert (signer2.public_key, admin2, demo2) == (signer.public_key, admin_key, demo_key)
    with TestClient(create_app(store, signer2, admin2)) as client:
        sb = Sandbox(client, store, signer2, admin2, demo2)
        after, prefixes2 = full_snapshot(sb)
        assert (after["version"], after["checksum"]) == (before["version"], before["checksum"])
        assert prefixes2 == prefixes and id_prefix(org_id(77)) in prefixes2
        assert sb.get("/v1/catalog").headers["etag"] == etag
        assert lookup(sb, org_id(77), key["api_key"])["entries"]
        assert len(sb.admin("GET", "/v1/admin/feedback").json()["records"]) == 2
        assert entries_count(sb) == len(sb.store._conn().execute(
            "SELECT entry_id FROM entries").fetchall())
        assert sb.get(f"/v1/snapshot?since={after['version']}").status_code == 200
    store.close()
