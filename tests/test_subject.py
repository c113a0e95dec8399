"""Subject: the identifier is validated and normalised by its kind however a Subject is
made (issue 12 edge 9)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

import credit_check._subject as subject_module
from credit_check import (
    Decision,
    InvalidSubjectId,
    Outcome,
    PilotCodeWarning,
    Scenario,
    Subject,
    SubjectKind,
    Transaction,
)
from credit_check._models import CST

ORG, PERSON, PILOT = "91350100M000100Y43", "11010519491231002X", "91350203M0001QAY9B"
BAD_PERSON = "11010519491231002"  # one digit short


@pytest.mark.parametrize(("kind", "code", "problem"), [
    (SubjectKind.ORGANIZATION, "garbage", "length"),
    ("organization", ORG[:-1] + "0", "check_character"),
    (SubjectKind.PERSON, BAD_PERSON, "length"),
    ("person", "36042619910102009X", "check_character"),
    ("person", ORG, "character"),  # a USCC is no id number
])
def test_subject_made_directly_raises_invalid_subject_id(kind: Any, code: str,
                                                         problem: str) -> None:
    for make in (lambda: Subject(kind=kind, id=code),
                 lambda: Subject.model_validate({"kind": kind, "id": code}),
                 lambda: Subject.model_validate_json(json.dumps({"kind": kind, "id": code})),
                 lambda: Subject.model_validate_strings({"kind": kind, "id": code})):
        with pytest.raises(InvalidSubjectId) as info:
            make()
        assert info.value.problem == problem
        assert code not in str(info.value)


def test_subject_made_directly_normalises_the_id_as_the_factories_do() -> None:
    assert Subject(kind="organization", id="9135 0100-m000 100y43") == Subject.organization(ORG)
    assert Subject(kind="person", id="110105491231002").id == PERSON  # legacy, upgraded
    assert Subject.model_validate({"kind": "person", "id": " 11010519491231002x "}) == (
        Subject.person(PERSON))


def test_a_nested_legal_representative_is_validated_too() -> None:
    with pytest.raises(InvalidSubjectId) as info:
        Subject.model_validate({"kind": "organization", "id": ORG,
                                "legal_representative": {"kind": "person", "id": BAD_PERSON}})
    assert info.value.field == "id_number" and BAD_PERSON not in str(info.value)
    with pytest.raises(ValidationError, match=r"legal representative .* is a natural person"):
        Subject(kind="organization", id=ORG, legal_representative=Subject.organization(ORG))
    made = Subject.model_validate({"kind": "organization", "id": ORG,
                                   "legal_representative": {"kind": "person", "id": PERSON}})
    assert made == Subject.organization(ORG, legal_representative=PERSON)


def test_a_decision_refuses_a_subject_with_an_invalid_id() -> None:
    with pytest.raises(ValidationError, match="must be 18 characters"):
        Decision(decision_id="d", outcome=Outcome.ALLOW, transaction=Transaction(
            scenario=Scenario.BIDDING), decided_at=dt.datetime(2026, 1, 2, tzinfo=CST),
            subject={"kind": "person", "id": BAD_PERSON})


def test_model_copy_validates_a_new_id_or_kind_and_the_representative() -> None:
    org = Subject.organization(ORG)
    with pytest.raises(InvalidSubjectId):
        org.model_copy(update={"id": "garbage"})
    with pytest.raises(InvalidSubjectId):
        org.model_copy(update={"kind": SubjectKind.PERSON})
    assert org.model_copy(update={"id": ORG.lower()}).id == ORG
    with pytest.raises(ValueError, match="natural person"):
        org.model_copy(update={"legal_representative": org})
    rep = Subject.person(PERSON)
    assert org.model_copy(update={"legal_representative": rep}).legal_representative == rep
    assert org.model_copy(update={"name": "某某公司"}).name == "某某公司"


def test_a_pilot_code_is_accepted_only_through_allow() -> None:
    with pytest.raises(InvalidSubjectId):
        Subject(kind="organization", id=PILOT)
    with pytest.raises(InvalidSubjectId):
        Subject.model_validate({"kind": "organization", "id": PILOT})
    with pytest.warns(PilotCodeWarning):
        assert Subject.organization(PILOT, allow=[PILOT]).id == PILOT
    with pytest.warns(PilotCodeWarning):
        made = Subject.model_validate({"kind": "organization", "id": PILOT},
                                      context={"allow": [PILOT]})
    assert made.id == PILOT


def test_subject_validation_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The validating __init__ is marked as pydantic's own, so validation does not call it
    again (twice the work, and the context lost: a pilot code in allow= would be refused);
    the factories validate the id themselves and pydantic does not check it again."""
    assert Subject.__pydantic_custom_init__ is False
    calls: list[str] = []
    real = subject_module.validate_id_number

    def counting(code: str) -> str:
        calls.append(code)
        return real(code)

    monkeypatch.setattr(subject_module, "validate_id_number", counting)
    Subject(kind="person", id=PERSON)
    assert calls == [PERSON]
    Subject.person(PERSON)
    Subject.parse(PERSON)  # (detect_kind, which tells the kind, checks it in _ids)
    assert calls == [PERSON] * 3
