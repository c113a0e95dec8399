"""The subject lookup client: ``GET /v1/subjects/{id}`` and ``POST /v1/subjects:batch``,
each answer validated into a :class:`SubjectLookup` before anything trusts it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from credit_check._exceptions import InvalidServiceData
from credit_check._ids import detect_kind, mask_id
from credit_check._models import ListEntry, SubjectLookup
from credit_check._transport import Transport

BATCH_LIMIT = 1000


def _validate(body: Any, asked: str) -> SubjectLookup:
    try:
        answer = SubjectLookup.model_validate(body)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body"
                         for e in exc.errors(include_url=False, include_input=False)})
        raise InvalidServiceData(
            f"lookup of {mask_id(asked)}: the answer does not validate "
            f"({', '.join(fields[:5])})"
        ) from None
    if answer.subject.id != asked:
        raise InvalidServiceData(
            f"lookup of {mask_id(asked)}: the service answered about another subject"
        )
    return answer


def own_entries(answer: SubjectLookup, subject_id: str) -> list[ListEntry]:
    """The entries that list ``subject_id`` itself."""
    return [e for e in answer.entries if e.subject_id == subject_id]


def representative_entries(answer: SubjectLookup, person_id: str) -> list[ListEntry]:
    """Entries concerning a person as legal representative: the person's own entries and
    entries of organisations that name the person as ``legal_representative_id``."""
    return [e for e in answer.entries
            if e.subject_id == person_id or e.legal_representative_id == person_id]


class LookupClient:
    """Looks subjects up on the list service.

    Args:
        transport: the checker's transport (one session).
        retries: retries per lookup; few, because a check is waiting.
    """

    def __init__(self, transport: Transport, *, retries: int = 1) -> None:
        self._transport = transport
        self._retries = retries

    def lookup(self, subject_id: str) -> SubjectLookup:
        """One subject's answer.

        Raises:
            ServiceUnavailable, ServiceRejected: from the transport.
            InvalidServiceData: the answer is not JSON, does not validate, or is about
                another subject.
        """
        if detect_kind(subject_id) == "person":
            # A URL path is written to access logs and HTTP-library debug logs on both
            # sides; a person's id number travels only in a request body.
            return self._batch([subject_id])[subject_id]
        path = "/v1/subjects/" + urllib.parse.quote(subject_id, safe="")
        # Error messages end up in logs: never with a person's id in clear.
        resp = self._transport.request("GET", path, retries=self._retries,
                                       label="/v1/subjects/" + mask_id(subject_id))
        return _validate(resp.body, subject_id)

    def lookup_signed(self, subject_ids: Sequence[str]
                      ) -> dict[str, tuple[SubjectLookup, Any]]:
        """Answers with the service's receipts (§9.4): ``{id: (answer, receipt JSON)}``,
        the receipt as the service sent it (verify it before trusting it). One batch
        round trip per :data:`BATCH_LIMIT` ids; persons never travel in a URL.

        Raises:
            ServiceUnavailable, ServiceRejected, InvalidServiceData: as :meth:`lookup`;
                also when an answer carries no receipt.
        """
        found: dict[str, tuple[SubjectLookup, Any]] = {}
        ids = list(dict.fromkeys(subject_ids))
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start : start + BATCH_LIMIT]
            for asked, result in zip(chunk, self._results(chunk, receipt=True), strict=True):
                receipt = result.get("receipt") if isinstance(result, dict) else None
                if receipt is None:
                    raise InvalidServiceData(
                        f"lookup of {mask_id(asked)}: a receipt was asked for and the answer "
                        "carries none (does the service sign receipts? see "
                        "GET /v1/capabilities)")
                found[asked] = (_validate(result, asked), receipt)
        return found

    def lookup_many(self, subject_ids: Sequence[str]) -> dict[str, SubjectLookup]:
        """Answers for many subjects, one round trip per :data:`BATCH_LIMIT` ids.

        Raises:
            ServiceUnavailable, ServiceRejected, InvalidServiceData: as :meth:`lookup`; also
                when the batch answer has the wrong number of results.
        """
        ids = list(dict.fromkeys(subject_ids))
        if len(ids) == 1:
            return {ids[0]: self.lookup(ids[0])}
        return self._batch(ids)

    def _batch(self, ids: list[str]) -> dict[str, SubjectLookup]:
        found: dict[str, SubjectLookup] = {}
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start : start + BATCH_LIMIT]
            for asked, result in zip(chunk, self._results(chunk), strict=True):
                found[asked] = _validate(result, asked)
        return found

    def _results(self, chunk: list[str], *, receipt: bool = False) -> list[Any]:
        body_out: dict[str, Any] = {"ids": chunk}
        if receipt:
            body_out["receipt"] = True
        resp = self._transport.request("POST", "/v1/subjects:batch", json_body=body_out,
                                       retries=self._retries)
        body = resp.body
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(chunk):
            raise InvalidServiceData(
                f"batch lookup of {len(chunk)} subjects: the answer does not carry "
                "one result per id"
            )
        return results
