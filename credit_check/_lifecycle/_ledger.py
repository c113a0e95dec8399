"""The 信用承诺 ledger: commitments made when a case is accepted with materials missing
(容缺受理) or on the applicant's word (告知承诺), their fulfilment or waiver, and the sweep
that reports each one still open the day after its due date as breached (违诺), once.

Every change is a feedback record (DESIGN §9.6), so the platform follows the commitment
and — through a catalogue list of commitment breakers — feeds a breach back into the next
decision, as any other list.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from credit_check._exceptions import InvalidArgument, OutboxError, UnknownCommitment
from credit_check._ids import mask_id
from credit_check._lifecycle._records import commitment_record
from credit_check._lifecycle._store import (
    C_BREACHED,
    C_FULFILLED,
    C_OPEN,
    C_WAIVED,
    LifecycleStore,
)
from credit_check._lifecycle._workdays import MAX_WORKING_DAYS, WorkdayCalendar
from credit_check._models import CST, FeedbackKind, Outcome

logger = logging.getLogger("credit_check.lifecycle")

MAX_ITEMS = 50
ITEM_LENGTH = 200
# Outcomes that allow facilitation: RESTRICT means 不适用告知承诺、容缺受理 (rule 5).
COMMITTABLE = (Outcome.GREEN_CHANNEL, Outcome.ALLOW)


@dataclass(frozen=True, slots=True)
class Commitment:
    """A commitment of the ledger (信用承诺).

    Attributes:
        commitment_id: its id (for :meth:`Checker.fulfil` and :meth:`Checker.waive`).
        decision_id: the decision it was made on.
        case_id: the case (办件), if the decision had one.
        subject: the subject's id as it may be shown (a person's masked).
        items: the materials or undertakings committed to.
        received: those received so far.
        due: the last day to fulfil it (China Standard Time).
        provisional: the due date was counted on weekends only, for a year whose official
            working-day schedule is not known yet; it may move when it is.
        state: ``open``, ``fulfilled``, ``waived`` or ``breached``.
        created_at: when it was made.
    """

    commitment_id: str
    decision_id: str
    case_id: str | None
    subject: str
    items: tuple[str, ...]
    received: tuple[str, ...]
    due: dt.date
    provisional: bool
    state: str
    created_at: dt.datetime

    @property
    def outstanding(self) -> tuple[str, ...]:
        """The items not received yet."""
        return tuple(i for i in self.items if i not in self.received)


def _shown(subject: dict[str, Any]) -> str:
    return mask_id(subject["id"]) if subject["kind"] == "person" else str(subject["id"])


def commitment_of(row: dict[str, Any]) -> Commitment:
    """A ledger row as a :class:`Commitment`."""
    record = row["decision"]
    return Commitment(
        commitment_id=row["commitment_id"], decision_id=record["decision_id"],
        case_id=row["case_id"], subject=_shown(record["subject"]),
        items=tuple(row["items"]), received=tuple(row["received"]),
        due=dt.date.fromisoformat(row["due"]), provisional=bool(row["provisional"]),
        state=row["state"], created_at=dt.datetime.fromisoformat(row["created_at"]))


def _items(items: Iterable[str] | None, what: str) -> list[str]:
    if isinstance(items, str) or items is None:
        raise InvalidArgument(f"{what}: give a list of items, e.g. ['设备清单']")
    found = list(dict.fromkeys(i.strip() if isinstance(i, str) else i for i in items))
    if not found or len(found) > MAX_ITEMS:
        raise InvalidArgument(f"{what}: give 1 to {MAX_ITEMS} items, got {len(found)}")
    for i, item in enumerate(found):
        if not isinstance(item, str) or not item or len(item) > ITEM_LENGTH:
            raise InvalidArgument(f"{what}[{i}]: each item is a non-empty text of at most "
                                  f"{ITEM_LENGTH} characters")
    return found


class Ledger:
    """Commitments kept in the lifecycle store, recorded through the outbox.

    Args:
        store: the lifecycle store.
        write: writes a feedback record durably (the outbox's ``write``).
        calendar: working days for ``working_days`` due dates.
        clock: the checker's clock.
    """

    def __init__(self, store: LifecycleStore, write: Callable[[Any], None],
                 calendar: WorkdayCalendar, clock: Callable[[], dt.datetime]) -> None:
        self._store = store
        self._write = write
        self._calendar = calendar
        self._clock = clock

    def commit(self, decision: dict[str, Any], items: Iterable[str], *,
               due: dt.date | str | None, working_days: int | None,
               operator: str | None) -> Commitment:
        """Open a commitment on a decision (its record) and record it."""
        outcome = Outcome(decision["outcome"])
        if outcome not in COMMITTABLE:
            raise InvalidArgument(
                f"commit(): decision {decision['decision_id']} is {outcome.value}; a "
                "commitment (容缺受理/告知承诺) is open only to green_channel or allow "
                "decisions — restrict, review and deny exclude such facilitation")
        wanted = _items(items, "commit(items)")
        now = self._clock().astimezone(CST)
        if (due is None) == (working_days is None):
            raise InvalidArgument("commit(): give either due (a date) or working_days "
                                  "(a number of working days from today), not both")
        provisional = False
        if working_days is not None:
            if isinstance(working_days, bool) or not isinstance(working_days, int) or \
                    not 1 <= working_days <= MAX_WORKING_DAYS:
                raise InvalidArgument(f"commit(working_days): a whole number from 1 to "
                                      f"{MAX_WORKING_DAYS}, got {working_days!r}")
            day, provisional = self._calendar.add_working_days(now.date(), working_days)
        else:
            try:
                day = due if isinstance(due, dt.date) else dt.date.fromisoformat(str(due))
            except ValueError:
                raise InvalidArgument(f"commit(due): {due!r} is not a date "
                                      "(YYYY-MM-DD)") from None
            if isinstance(day, dt.datetime):
                day = day.astimezone(CST).date()
            if day < now.date():
                raise InvalidArgument(f"commit(due): {day} is in the past")
            provisional = not self._calendar.known(day.year)
        commitment_id = uuid.uuid4().hex
        data = {"decision": decision, "items": wanted, "received": [],
                "provisional": provisional, "working_days": working_days,
                "created_at": now.isoformat()}
        case_id = (decision.get("transaction") or {}).get("case_id")
        self._store.add_commitment(commitment_id, decision["decision_id"], case_id,
                                   decision["subject"]["id"], day.isoformat(), now.isoformat(),
                                   data)
        try:
            self._write(commitment_record(
                FeedbackKind.COMMITMENT, decision, commitment_id=commitment_id, now=now,
                items=wanted, due=day, provisional=provisional, operator=operator))
        except OutboxError:
            self._store.remove_commitment(commitment_id)
            raise
        return self._get(commitment_id)

    def _row(self, commitment_id: str) -> dict[str, Any]:
        row = self._store.commitment(commitment_id)
        if row is None:
            raise UnknownCommitment(f"commitment {commitment_id!r} is not in this ledger")
        return row

    def _get(self, commitment_id: str) -> Commitment:
        return commitment_of(self._row(commitment_id))

    def fulfil(self, commitment_id: str, items: Iterable[str], operator: str | None
               ) -> Commitment:
        """Materials received: record them; the commitment is fulfilled once all are in."""
        row = self._row(commitment_id)
        if row["state"] in ("fulfilled", "waived"):
            raise InvalidArgument(f"fulfil(): commitment {commitment_id} is {row['state']} "
                                  "already")
        got = _items(items, "fulfil(items)")
        unknown = [i for i in got if i not in row["items"]]
        if unknown:
            raise InvalidArgument(f"fulfil(items): {unknown[0]!r} is not an item of "
                                  f"commitment {commitment_id} (its items: "
                                  f"{'; '.join(row['items'])})")
        received = list(dict.fromkeys([*row["received"], *got]))
        done = all(i in received for i in row["items"])
        state = C_FULFILLED if done else (C_BREACHED if row["state"] == "breached" else C_OPEN)
        data = {k: row[k] for k in ("decision", "items", "provisional", "working_days",
                                    "created_at")} | {"received": received}
        before = C_BREACHED if row["state"] == "breached" else C_OPEN
        if not self._store.update_commitment(commitment_id, state, data, (before,)):
            raise InvalidArgument(f"fulfil(): commitment {commitment_id} changed meanwhile; "
                                  "read it again")
        now = self._clock().astimezone(CST)
        self._write(commitment_record(FeedbackKind.COMMITMENT_FULFILLED, row["decision"],
                                      commitment_id=commitment_id, now=now, items=got,
                                      operator=operator))
        return self._get(commitment_id)

    def waive(self, commitment_id: str, reason: str, operator: str | None) -> Commitment:
        """The department no longer requires it: record why."""
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
            raise InvalidArgument("waive(reason): say why, in at most 2000 characters")
        row = self._row(commitment_id)
        if row["state"] in ("fulfilled", "waived"):
            raise InvalidArgument(f"waive(): commitment {commitment_id} is {row['state']} "
                                  "already")
        data = {k: row[k] for k in ("decision", "items", "received", "provisional",
                                    "working_days", "created_at")}
        before = C_BREACHED if row["state"] == "breached" else C_OPEN
        if not self._store.update_commitment(commitment_id, C_WAIVED, data, (before,)):
            raise InvalidArgument(f"waive(): commitment {commitment_id} changed meanwhile; "
                                  "read it again")
        now = self._clock().astimezone(CST)
        self._write(commitment_record(FeedbackKind.COMMITMENT_WAIVED, row["decision"],
                                      commitment_id=commitment_id, now=now,
                                      note=reason.strip(), operator=operator))
        return self._get(commitment_id)

    def sweep(self) -> int:
        """Report each open commitment whose due date has passed as breached (in the
        follower). The record's id is the commitment's, so a repeat after a crash is one
        record to the service; how many were reported."""
        now = self._clock().astimezone(CST)
        reported = 0
        for row in self._store.commitments(overdue_on=now.date().isoformat()):
            outstanding = [i for i in row["items"] if i not in row["received"]]
            self._write(commitment_record(
                FeedbackKind.COMMITMENT_BREACHED, row["decision"],
                commitment_id=row["commitment_id"], now=now, items=outstanding or row["items"],
                due=dt.date.fromisoformat(row["due"]), provisional=bool(row["provisional"])))
            data = {k: row[k] for k in ("decision", "items", "received", "provisional",
                                        "working_days", "created_at")}
            if self._store.update_commitment(row["commitment_id"], C_BREACHED, data,
                                             (C_OPEN,)):
                reported += 1
                logger.warning("commitment %s of case %s (subject %s) is breached (违诺): due "
                               "%s, outstanding: %s", row["commitment_id"], row["case_id"],
                               _shown(row["decision"]["subject"]), row["due"],
                               "; ".join(outstanding))
        return reported

    def list(self, subject_id: str | None = None) -> list[Commitment]:
        """Every commitment (of one subject), oldest first."""
        return [commitment_of(r) for r in self._store.commitments(subject_id)]
