"""Domain models: list entries, transactions, decisions, lookup answers and feedback
records (and, from ``_subject``, the subjects). The catalogue's models live in
``_catalog`` and the open codes in ``_codes``; both are re-exported here.

Shapes follow the list service protocol v1 (DESIGN §6). A plain date means 00:00 China
Standard Time of that day; a datetime without an offset is taken as China Standard Time.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from credit_check._catalog import Catalog as Catalog
from credit_check._catalog import Layer as Layer
from credit_check._catalog import ListDefinition as ListDefinition
from credit_check._catalog import Measure as Measure
from credit_check._catalog import ScenarioDefinition as ScenarioDefinition
from credit_check._catalog import describe_validation_error as describe_validation_error
from credit_check._codes import Effect as Effect
from credit_check._codes import ListKind as ListKind
from credit_check._codes import Scenario as Scenario
from credit_check._codes import ScenarioCode, check_region
from credit_check._codes import Target as Target
from credit_check._ids import mask_id
from credit_check._receipts import Receipt

# Re-exported (``as``): code that imports them from here keeps working.
from credit_check._subject import RelatedPerson as RelatedPerson
from credit_check._subject import Subject as Subject
from credit_check._subject import SubjectKind as SubjectKind

CST = dt.timezone(dt.timedelta(hours=8), "CST")
_M = TypeVar("_M", bound=BaseModel)
# BaseModel's slots, set directly: a frozen model refuses setattr.
_set_dict, _set_fields_set, _set_extra, _set_private = (
    BaseModel.__dict__[name].__set__ for name in
    ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"))


def trusted(cls: type[_M], values: dict[str, Any], fields_set: set[str]) -> _M:
    """A model from values that are already valid, as validation would have made it.

    For hot paths only: ``values`` must hold every field, in declaration order, and
    ``fields_set`` the fields the caller gave. It does what ``model_construct`` does for
    such values (no defaults to fill, no aliases, no private attributes) in a third of
    the time (1.8 µs against 3.9 µs validated, 5.4 µs ``model_construct``, for a
    Decision: a third of the not-listed check). Values that miss a field (one added to the
    model since the caller was written) take pydantic's way instead of making a broken
    model; ``tests/test_models.py`` holds the slots this writes to pydantic 2.
    """
    if len(values) != len(cls.__pydantic_fields__):
        return cls.model_validate(values)
    m = object.__new__(cls)
    _set_dict(m, values)
    _set_fields_set(m, fields_set)
    _set_extra(m, None)
    _set_private(m, None)
    return m


def max_length(model: type[BaseModel], name: str) -> int:
    """The ``max_length`` a model declares for one of its fields."""
    return int(next(m.max_length for m in model.model_fields[name].metadata
                    if getattr(m, "max_length", None) is not None))


def to_cst_datetime(value: Any) -> Any:
    """Read a plain date as 00:00 CST and a naive datetime as CST; leave others to pydantic."""
    if isinstance(value, str) and len(value) == 10 and value[4:5] == "-":
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=CST)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=CST)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=CST)
    return value


Timestamp = Annotated[dt.datetime, BeforeValidator(to_cst_datetime)]


class Outcome(enum.StrEnum):
    """What a check decides, most severe first."""

    DENY = "deny"
    REVIEW = "review"
    RESTRICT = "restrict"
    ALLOW = "allow"
    GREEN_CHANNEL = "green_channel"

    @property
    def severity(self) -> int:
        """Higher is more severe: DENY 4 … GREEN_CHANNEL 0."""
        return _SEVERITY[self]

    @classmethod
    def most_severe(cls, outcomes: Iterable[Outcome]) -> Outcome:
        """The most severe of ``outcomes`` (ALLOW when there are none)."""
        return max(outcomes, key=_SEVERITY.__getitem__, default=cls.ALLOW)


_SEVERITY = {
    Outcome.DENY: 4,
    Outcome.REVIEW: 3,
    Outcome.RESTRICT: 2,
    Outcome.ALLOW: 1,
    Outcome.GREEN_CHANNEL: 0,
}


class EntryStatus(enum.StrEnum):
    ACTIVE = "active"
    OBJECTION_PENDING = "objection_pending"
    REPAIRED = "repaired"
    REMOVED = "removed"
    EXPIRED = "expired"


class ListEntry(BaseModel):
    """One subject on one list (名单条目)."""

    model_config = ConfigDict(frozen=True)

    entry_id: str = Field(min_length=1, max_length=128)
    list_code: str = Field(min_length=1, max_length=128)
    list_kind: ListKind
    subject_id: str = Field(min_length=1, max_length=64)
    subject_kind: SubjectKind
    name: str | None = Field(default=None, max_length=512)
    issuing_department: str = Field(max_length=512)
    basis_document: str = Field(default="", max_length=512)
    reason: str = Field(default="", max_length=4096)
    listed_on: Timestamp | None = None
    effective_from: Timestamp
    effective_until: Timestamp | None = None
    status: EntryStatus = EntryStatus.ACTIVE
    legal_representative_id: str | None = Field(default=None, max_length=64)

    def is_in_period(self, now: dt.datetime) -> bool:
        """Whether ``now`` lies in ``[effective_from, effective_until)``."""
        return self.effective_from <= now and (
            self.effective_until is None or now < self.effective_until
        )

    def public_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with natural persons' ids masked."""
        data = self.model_dump(mode="json")
        if self.subject_kind is SubjectKind.PERSON:
            data["subject_id"] = mask_id(self.subject_id)
        if self.legal_representative_id:
            data["legal_representative_id"] = mask_id(self.legal_representative_id)
        return data

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            if key == "subject_id" and self.subject_kind is SubjectKind.PERSON:
                value = mask_id(self.subject_id)
            elif key == "legal_representative_id" and value:
                value = mask_id(value)
            yield key, value


class Transaction(BaseModel):
    """The case being handled (办件): scenario, case id, department, region, item code.

    ``scenario`` is a :class:`Scenario` or any well-formed code a catalogue names
    (e.g. ``franchise``); ``region`` is the six-digit GB/T 2260 code of where the case is
    handled (the deployment's ``CREDIT_CHECK_REGION`` when not given): it selects the
    provincial and city supplements of the catalogue that apply.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: ScenarioCode
    case_id: str | None = Field(default=None, max_length=128)
    department: str | None = Field(default=None, max_length=256)
    region: Annotated[str, AfterValidator(check_region)] | None = None
    item_code: str | None = Field(default=None, max_length=128)
    operator: str | None = Field(default=None, max_length=128)


class AppliedMeasure(BaseModel):
    """A catalogue measure applied by a decision, with the entry that triggered it and
    what the catalogue says of it: its layer, grounds (实施事由), evidence (证据材料),
    initiating department and punishment period."""

    model_config = ConfigDict(frozen=True)

    code: str
    name: str
    effect: Effect
    legal_basis: str
    implementing_department: str
    target: Target
    list_code: str | None = None
    entry_id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    layer: str | None = None
    grounds: str | None = None
    evidence: list[str] = Field(default_factory=list)
    initiating_department: str | None = None
    period_months: int | None = None


class Decision(BaseModel):
    """The result of one check, explainable: entries, measures, reasons, versions."""

    model_config = ConfigDict(frozen=True)

    decision_id: str
    outcome: Outcome
    subject: Subject
    transaction: Transaction
    measures: list[AppliedMeasure] = Field(default_factory=list)
    matches: list[ListEntry] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    remedy: str | None = None
    degraded: bool = False
    catalog_version: str | None = None
    data_version: str | None = None
    decided_at: Timestamp
    # The 查询凭证 (DESIGN §9.4): a ServiceReceipt (a signed online answer) or a
    # SnapshotReceipt (a local decision: the signed snapshot header and the prefix).
    receipt: Receipt | None = None

    def public_dict(self) -> dict[str, Any]:
        """The Decision as JSON (DESIGN §5), natural persons' ids masked."""
        return {
            "decision_id": self.decision_id,
            "outcome": self.outcome.value,
            "subject": self.subject.public_dict(),
            "transaction": self.transaction.model_dump(mode="json"),
            "measures": [m.model_dump(mode="json") for m in self.measures],
            "matches": [e.public_dict() for e in self.matches],
            "reasons": list(self.reasons),
            "remedy": self.remedy,
            "degraded": self.degraded,
            "catalog_version": self.catalog_version,
            "data_version": self.data_version,
            "decided_at": self.decided_at.isoformat(),
            "receipt": self.receipt.to_dict() if self.receipt is not None else None,
        }


class RepresentativeRef(BaseModel):
    """The legal representative of an organisation as the service knows it."""

    id: str
    name: str | None = None


class RelatedRef(BaseModel):
    """A person related to an organisation in a role, as the service knows it (§9.5)."""

    id: str
    role: str = Field(min_length=1, max_length=64)
    name: str | None = None


class OrganizationRef(BaseModel):
    """An organisation in which the looked-up person holds a role (§9.5)."""

    id: str
    role: str = Field(min_length=1, max_length=64)


class SubjectInfo(BaseModel):
    """The ``subject`` part of a lookup answer: an organisation's related persons by role
    (the legal representative also as ``legal_representative``), a person's roles in
    the organisations whose entries the answer carries."""

    id: str
    kind: SubjectKind
    name: str | None = None
    legal_representative: RepresentativeRef | None = None
    related_persons: list[RelatedRef] = Field(default_factory=list)
    related_organizations: list[OrganizationRef] = Field(default_factory=list)


class Withheld(BaseModel):
    """A role whose entries the service did not show to this key (protocol v1.1, §9.1),
    e.g. ``{"role": "subject", "reason": "key_not_allowed_persons"}``."""

    model_config = ConfigDict(frozen=True)

    role: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=128)


class SubjectLookup(BaseModel):
    """A list service answer for one subject (``GET /v1/subjects/{id}``).

    ``withheld`` names the roles whose entries the service did not show (empty from a
    v1 service, which says nothing about it).
    """

    subject: SubjectInfo
    entries: list[ListEntry] = Field(default_factory=list)
    clean_since: Timestamp | None = None
    data_version: str
    as_of: Timestamp
    withheld: list[Withheld] = Field(default_factory=list)


class FeedbackKind(enum.StrEnum):
    DECISION = "decision"
    OUTCOME = "outcome"
    POST_CHECK = "post_check"
    # Protocol v1.1 (DESIGN §9.6): sent only to a service that lists them.
    RESCREEN = "rescreen"
    COMMITMENT = "commitment"
    COMMITMENT_FULFILLED = "commitment_fulfilled"
    COMMITMENT_WAIVED = "commitment_waived"
    COMMITMENT_BREACHED = "commitment_breached"
    CASE_OPENED = "case_opened"


# The record kinds of protocol v1, which every service accepts.
V1_KINDS = frozenset({"decision", "outcome", "post_check"})
_COMMITMENT_KINDS = frozenset({"commitment", "commitment_fulfilled", "commitment_waived",
                               "commitment_breached"})
# Fields of the v1.1 record kinds: left out of a record's JSON when None, so records of
# the v1 kinds keep exactly the shape a v1 service accepts.
LIFECYCLE_FIELDS = ("lift", "lifted_entries", "commitment_id", "items", "due", "provisional")


class FeedbackSubject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: SubjectKind
    id: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=512)


class FeedbackMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry_id: str
    list_code: str
    list_kind: ListKind
    status: EntryStatus
    subject_id: str | None = None


class FeedbackRecord(BaseModel):
    """One execution-feedback record (执行反馈), DESIGN §8.

    ``hmac`` is HMAC-SHA256 over the canonical JSON of every other field, keyed with the
    department's feedback key (see ``credit_check._crypto.feedback_key``).
    """

    model_config = ConfigDict(extra="forbid")

    record_id: str = Field(min_length=1, max_length=64)
    kind: FeedbackKind
    decision_id: str = Field(min_length=1, max_length=64)
    department: str = Field(min_length=1, max_length=256)
    transaction: Transaction
    subject: FeedbackSubject
    matches: list[FeedbackMatch] = Field(default_factory=list)
    measures: list[AppliedMeasure] = Field(default_factory=list)
    outcome: Outcome
    degraded: bool = False
    catalog_version: str | None = None
    data_version: str | None = None
    created_at: Timestamp
    result: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=2000)
    operator: str | None = Field(default=None, max_length=128)
    previous_outcome: Outcome | None = None
    hmac: str = Field(default="", max_length=128)
    # The decision's receipt (§9.4), as JSON; a record without one has no such member.
    receipt: dict[str, Any] | None = None
    # v1.1 kinds only (see LIFECYCLE_FIELDS): a re-screen's lift flag and the entries
    # removed as wrong; a commitment's id, items, due date (China Standard Time) and
    # whether that date rests on a working-day schedule not yet published.
    lift: bool | None = None
    lifted_entries: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = \
        Field(default=None, max_length=100)
    commitment_id: str | None = Field(default=None, min_length=1, max_length=64)
    items: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = \
        Field(default=None, max_length=50)
    due: dt.date | None = None
    provisional: bool | None = None

    @field_validator("record_id", "decision_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> FeedbackRecord:
        kind = self.kind.value
        if kind == "rescreen":
            if self.lift is None or self.previous_outcome is None:
                raise ValueError("a rescreen record needs lift and previous_outcome")
            if self.lift and not self.lifted_entries:
                raise ValueError("a rescreen record with lift: true names lifted_entries")
        elif self.lift is not None or self.lifted_entries is not None:
            raise ValueError(f"lift and lifted_entries belong to rescreen records, not {kind}")
        if kind in _COMMITMENT_KINDS:
            if self.commitment_id is None:
                raise ValueError(f"a {kind} record needs commitment_id")
            if kind in ("commitment", "commitment_breached") and (
                    not self.items or self.due is None or self.provisional is None):
                raise ValueError(f"a {kind} record needs items, due and provisional")
            if kind == "commitment_fulfilled" and not self.items:
                raise ValueError("a commitment_fulfilled record needs the items received")
        elif any(getattr(self, f) is not None for f in
                 ("commitment_id", "items", "due", "provisional")):
            raise ValueError(f"commitment_id, items, due and provisional belong to commitment "
                             f"records, not {kind}")
        return self

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Records without a receipt, and of the v1 kinds, keep the exact form (and HMAC)
        # they always had: the optional members of later protocol versions are left out.
        data = handler(self)
        if isinstance(data, dict):
            for name in ("receipt", *LIFECYCLE_FIELDS):
                if data.get(name, 0) is None:
                    del data[name]
        return data


