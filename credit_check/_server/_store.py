"""The sandbox's storage interface: one :class:`Store` that every engine implements
(SQLite, PostgreSQL), with the value types its methods take and give.

The semantics are those of plain SQL on one shared database, so that any number of
service processes on the same database answer as one service: every versioned change is
one transaction that also writes its delta, and each process's in-memory prefix set
catches up from the database (:meth:`Store.refresh`).
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from credit_check._crypto import Signer
from credit_check._models import CST, Catalog, EntryStatus, ListEntry

SCHEMA_VERSION = 3
COUNTING = (EntryStatus.ACTIVE.value, EntryStatus.OBJECTION_PENDING.value)
# The catalogue schema every catalogue the current models accept requires.
CATALOG_SCHEMA = 1
# Why an entry's status changed (DESIGN §9.3); ``objection_upheld_wrong`` lifts it.
REASONS = ("objection_raised", "objection_rejected", "objection_upheld_wrong", "repaired",
           "expired", "removed")
LIFTING_REASON = "objection_upheld_wrong"

# entry_id, subject_id, subject_kind, rep_id, list_code, status, data (the entry's JSON)
EntryRow = tuple[str, str, str, str | None, str, str, str]
# id, kind, name, rep_id, clean_since
SubjectRow = tuple[str, str, str | None, str | None, str | None]


def entry_row(e: ListEntry) -> EntryRow:
    """An entry as the store takes it: the fields it indexes and the entry's JSON."""
    return (e.entry_id, e.subject_id, e.subject_kind.value, e.legal_representative_id,
            e.list_code, e.status.value, e.model_dump_json())


def now_cst() -> dt.datetime:
    return dt.datetime.now(CST).replace(microsecond=0)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    department: str
    feedback_key: bytes
    allow_persons: bool
    admin: bool = False


@dataclass(frozen=True)
class Head:
    """Where the shared database stands: snapshot version, catalogue serial, epoch."""

    version: int
    catalog_serial: int
    epoch: int


@dataclass(frozen=True)
class StoredCatalog:
    catalog: Catalog
    raw: dict[str, Any]
    serial: int
    schema: int


@dataclass(frozen=True)
class SnapshotState:
    """The full prefix set at one version, packed (sorted 4-byte big-endian)."""

    version: int
    packed: bytes
    checksum: str
    signature: str  # the v1 signature over (version, checksum)

    @property
    def count(self) -> int:
        return len(self.packed) // 4


@dataclass(frozen=True)
class Delta:
    """The change from ``since`` to ``state.version``."""

    since: int
    state: SnapshotState
    added: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)
    changed: set[int] = field(default_factory=set)
    lifted: set[str] = field(default_factory=set)


class Intake(NamedTuple):
    """A verified feedback record ready to store: the non-personal columns and its text
    (the record as sent, ``hmac`` included). A tuple: made 500 times per request."""

    record_id: str
    department: str
    kind: str
    scenario: str | None
    outcome: str | None
    hits: int
    measures: int
    day: str
    text: bytes
    # The non-personal facts the monitoring stats group by (schema 3): the transaction's
    # region, the degraded flag, the case (its id, else the decision's; kept only as a
    # keyed hash), and the codes of the lists matched and the measures applied.
    region: str | None = None
    degraded: bool = False
    case_ref: str | None = None
    lists: tuple[str, ...] = ()
    measure_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatsQuery:
    """Which feedback the stats count: days ``since`` (inclusive) to ``until`` (exclusive),
    as China Standard Time dates ``YYYY-MM-DD``, and one department (None: all)."""

    since: str | None = None
    until: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class FeedbackPage:
    """One page of received records in arrival order; ``after`` is the cursor of the next
    page (the position after its last record), ``more`` whether records follow now."""

    records: list[dict[str, Any]]
    after: int
    more: bool


class StoreError(ValueError):
    """A request the store refuses; the message is shown to the caller."""


class SerialConflict(StoreError):
    """A catalogue serial that does not move forward."""


class StoreUnavailable(RuntimeError):
    """The database cannot be reached (after retrying); the request may be tried again."""


class SnapshotGone(LookupError):
    """A delta from this version is no longer (or never was) available."""


class Store(ABC):
    """All sandbox state on one database; safe to use from many threads and processes."""

    schema_version: int
    signer: Signer  # the key this process signs with

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def meta(self, name: str) -> str | None: ...

    @abstractmethod
    def claim(self, name: str) -> bool:
        """Set the one-time flag ``name``; True only for the one caller that set it."""

    # -- freshness ---------------------------------------------------------------------

    @abstractmethod
    def refresh(self, max_age: float = 0.0) -> Head:
        """Catch this process up with the database (at most every ``max_age`` seconds)."""

    @abstractmethod
    def raise_epoch(self) -> int: ...

    # -- catalogue ---------------------------------------------------------------------

    @abstractmethod
    def catalog(self, schema: int | None = None) -> StoredCatalog | None:
        """The newest catalogue needing at most ``schema`` (None: the newest of all)."""

    @abstractmethod
    def put_catalog(self, catalog: Catalog, *, serial: int | None = None,
                    schema: int = CATALOG_SCHEMA, if_none: bool = False
                    ) -> tuple[StoredCatalog, int]:
        """Make ``catalog`` current; returns it with its serial, and the snapshot version.

        Raises:
            SerialConflict: ``serial`` is not above the current one.
        """

    # -- entries and subjects ----------------------------------------------------------

    @abstractmethod
    def upsert(self, rows: list[EntryRow], subjects: Iterable[SubjectRow] = (), *,
               once: str | None = None) -> dict[str, int]:
        """Insert or replace entries by id (and subjects by id), as one version.

        Args:
            once: a one-time flag: when it is set already nothing is done, else it is set
                in the same transaction (the demo data is loaded once, whoever is first).

        Raises:
            StoreError: an entry names a list the catalogue does not have.
        """

    @abstractmethod
    def set_status(self, entry_id: str, status: EntryStatus,
                   effective_until: dt.datetime | None, reason: str | None = None
                   ) -> ListEntry:
        """Change one entry's status (a new version). Raises KeyError for no such entry."""

    @abstractmethod
    def lookup(self, subject_id: str, kind: str, *, persons: bool, history: bool
               ) -> dict[str, Any]:
        """The protocol answer for one subject (``withheld`` included).

        Args:
            persons: the key may see natural persons.
            history: every status (the admin view); else only counting entries.
        """

    @abstractmethod
    def snapshot(self) -> SnapshotState: ...

    @abstractmethod
    def delta(self, since: int) -> Delta:
        """Raises SnapshotGone when no delta from ``since`` is kept."""

    # -- keys --------------------------------------------------------------------------

    @abstractmethod
    def create_key(self, department: str, allow_persons: bool,
                   api_key: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def revoke_key(self, key_id: str) -> bool: ...

    @abstractmethod
    def find_key(self, api_key: str) -> ApiKey | None: ...

    # -- feedback ----------------------------------------------------------------------

    @abstractmethod
    def add_feedback(self, records: list[Intake]) -> tuple[list[str], list[str]]:
        """Store records not seen before, de-duplicated by the database on record_id;
        returns (accepted, duplicates) in the order given."""

    @abstractmethod
    def feedback(self, since: str | None, limit: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    def feedback_page(self, since: str | None, after: int, limit: int) -> FeedbackPage:
        """Up to ``limit`` records received at or after ``since`` and after the position
        ``after`` (0: from the first), in the order they were stored."""

    @abstractmethod
    def stats(self, query: StatsQuery | None = None) -> dict[str, Any]:
        """Checks, hits, measures, outcomes, lists, regions, degraded decisions and the
        coverage of the cases handled, over the records ``query`` selects."""

    # -- signing keys and health -------------------------------------------------------

    @abstractmethod
    def signing_keys(self) -> list[dict[str, Any]]:
        """Every signing key with its validity (``kid``, ``public_key``, ``valid_from``,
        ``valid_until``; None while current), the current one first."""

    @abstractmethod
    def rotate_signing_key(self, new: Signer) -> bool:
        """Make the :class:`~credit_check._crypto.Signer` ``new`` the current signing key
        (the old one stays listed as previous); False when it is current already. The
        store is then closed by the caller: every instance restarts with the new key.

        Raises:
            StoreError: ``new`` is a retired key.
        """

    @abstractmethod
    def ping(self) -> None:
        """One round trip to the database (readiness).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
