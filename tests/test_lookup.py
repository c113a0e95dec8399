"""The lookup client: answers are validated before use; a wrong schema, an answer about
another subject or a short batch is InvalidServiceData; lookups retry little."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from credit_check._exceptions import InvalidServiceData, ServiceUnavailable
from credit_check._lookup import LookupClient, own_entries, representative_entries
from credit_check._transport import Transport

BASE = "http://list.test"
ORG = "91350100M000100Y43"
PERSON = "11010519491231002X"


def body(sid: str, kind: str = "organization", entries: list[dict[str, Any]] | None = None,
         rep: str | None = None) -> dict[str, Any]:
    return {
        "subject": {"id": sid, "kind": kind, "name": None,
                    "legal_representative": {"id": rep, "name": "张三"} if rep else None},
        "entries": entries or [], "clean_since": "2020-01-01", "data_version": "7",
        "as_of": "2026-01-01T00:00:00+08:00",
    }


def entry(sid: str, kind: str = "organization", rep: str | None = None, eid: str = "e1") -> dict[str, Any]:
    return {"entry_id": eid, "list_code": "court.judgment_defaulter", "list_kind": "black",
            "subject_id": sid, "subject_kind": kind, "issuing_department": "court",
            "effective_from": "2024-01-01", "legal_representative_id": rep}


def client(retries: int = 1) -> LookupClient:
    return LookupClient(Transport(BASE, "k", sleep=lambda s: None), retries=retries)


@responses.activate
def test_lookup_validates_the_answer() -> None:
    responses.get(f"{BASE}/v1/subjects/{ORG}", json=body(ORG, rep=PERSON, entries=[entry(ORG)]))
    answer = client().lookup(ORG)
    assert answer.data_version == "7" and answer.entries[0].entry_id == "e1"
    assert answer.subject.legal_representative is not None
    assert answer.clean_since is not None and answer.clean_since.utcoffset() is not None


@responses.activate
def test_wrong_schema_is_invalid_service_data_naming_fields_not_values() -> None:
    responses.post(f"{BASE}/v1/subjects:batch",
                   json={"results": [{"subject": {"id": PERSON, "kind": "alien"},
                                      "entries": "x"}]})
    with pytest.raises(InvalidServiceData, match="does not validate") as info:
        client().lookup(PERSON)
    assert PERSON not in str(info.value)


@responses.activate
def test_answer_about_another_subject_is_rejected() -> None:
    responses.get(f"{BASE}/v1/subjects/{ORG}", json=body("91110000MA0000000X"))
    with pytest.raises(InvalidServiceData, match="another subject"):
        client().lookup(ORG)


@responses.activate
def test_non_object_answer_is_rejected() -> None:
    responses.get(f"{BASE}/v1/subjects/{ORG}", json=[1, 2])
    with pytest.raises(InvalidServiceData):
        client().lookup(ORG)


@responses.activate
def test_lookup_retries_only_as_configured() -> None:
    responses.get(f"{BASE}/v1/subjects/{ORG}", status=503)
    with pytest.raises(ServiceUnavailable):
        client(retries=1).lookup(ORG)
    assert len(responses.calls) == 2


@responses.activate
def test_batch_is_one_round_trip_in_order() -> None:
    other = "91110108MA01234567"
    responses.post(f"{BASE}/v1/subjects:batch", json={"results": [body(ORG), body(other)]})
    found = client().lookup_many([ORG, other, ORG])
    assert list(found) == [ORG, other]
    assert len(responses.calls) == 1
    assert responses.calls[0].request.body == f'{{"ids": ["{ORG}", "{other}"]}}'.encode()


@responses.activate
def test_batch_with_missing_results_is_rejected() -> None:
    responses.post(f"{BASE}/v1/subjects:batch", json={"results": [body(ORG)]})
    with pytest.raises(InvalidServiceData, match="one result per id"):
        client().lookup_many([ORG, "91110108MA01234567"])


@responses.activate
def test_batch_in_wrong_order_is_rejected() -> None:
    other = "91110108MA01234567"
    responses.post(f"{BASE}/v1/subjects:batch", json={"results": [body(other), body(ORG)]})
    with pytest.raises(InvalidServiceData):
        client().lookup_many([ORG, other])


@responses.activate
def test_batch_of_one_uses_the_single_lookup() -> None:
    responses.get(f"{BASE}/v1/subjects/{ORG}", json=body(ORG))
    assert list(client().lookup_many([ORG])) == [ORG]


@responses.activate
def test_a_person_is_looked_up_with_the_id_in_the_body_never_in_the_url() -> None:
    responses.post(f"{BASE}/v1/subjects:batch", json={"results": [body(PERSON, "person")]})
    assert client().lookup(PERSON).subject.id == PERSON
    [call] = responses.calls
    assert PERSON not in (call.request.url or "")
    assert PERSON in (call.request.body or b"").decode()  # type: ignore[union-attr]


def test_entries_are_split_into_own_and_as_representative() -> None:
    from credit_check._models import SubjectLookup

    answer = SubjectLookup.model_validate(body(PERSON, "person", entries=[
        entry(PERSON, "person", eid="own"),
        entry(ORG, rep=PERSON, eid="as-rep"),
        entry("91110108MA01234567", eid="unrelated"),
    ]))
    assert [e.entry_id for e in own_entries(answer, PERSON)] == ["own"]
    assert [e.entry_id for e in representative_entries(answer, PERSON)] == ["own", "as-rep"]


@responses.activate
def test_errors_never_show_the_id_in_clear() -> None:
    responses.post(f"{BASE}/v1/subjects:batch", status=503)
    with pytest.raises(ServiceUnavailable) as info:
        client(retries=0).lookup(PERSON)
    assert PERSON not in str(info.value)
    responses.get(f"{BASE}/v1/subjects/{ORG}", body="{bad")
    with pytest.raises(InvalidServiceData) as bad:
        client().lookup(ORG)
    assert ORG not in str(bad.value)
