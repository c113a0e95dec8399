"""The public error tree of credit-check.

    CreditCheckError
    ├── InvalidSubjectId (also ValueError)   an identifier fails GB 32100 / GB 11643 / GB 11714
    ├── ConfigurationError (also ValueError) a setting is missing or malformed
    ├── CatalogError (also ValueError)       a measure catalogue does not validate
    ├── ServiceError                         the list service answered, but not usefully
    │   ├── ServiceUnavailable               unreachable, timed out, 5xx or 429 after retries
    │   ├── ServiceRejected                  a 4xx answer: our request was wrong or not allowed
    │   └── InvalidServiceData               an answer that does not validate, or a bad signature
    │       └── InvalidReceipt                a receipt that is malformed or does not verify
    ├── OutboxError                          the feedback outbox cannot store or read a record
    ├── UnknownDecision (also KeyError)      report() named a decision this checker never made
    ├── UnknownCommitment (also KeyError)    fulfil()/waive() named a commitment not on record
    └── InvalidArgument (also ValueError)    a call's argument is malformed (which, what to do)
"""

from __future__ import annotations

from typing import Any


class CreditCheckError(Exception):
    """Base class of every error raised by credit-check."""


class InvalidSubjectId(CreditCheckError, ValueError):
    """An identifier is malformed: wrong length, illegal character or check character.

    Attributes:
        field: which identifier kind was being validated (``uscc``, ``id_number``, ``org_code``).
        problem: a short machine-readable problem code (``length``, ``character``,
            ``check_character``, ``birth_date``, ``region``, ``empty``).
    """

    def __init__(self, message: str, *, field: str = "id", problem: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.problem = problem


class ConfigurationError(CreditCheckError, ValueError):
    """A setting is missing or malformed; the message names the setting."""


class CatalogError(CreditCheckError, ValueError):
    """A measure catalogue does not validate; the message names the measure and field."""


class ServiceError(CreditCheckError):
    """The list service could not give a usable answer."""


class ServiceUnavailable(ServiceError):
    """The list service could not be reached, timed out, or kept failing after retries."""


class ServiceRejected(ServiceError):
    """The list service refused the request with a 4xx answer.

    Attributes:
        status_code: the HTTP status the service answered with.
    """

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class InvalidServiceData(ServiceError):
    """The service answered with data that does not validate or is not properly signed."""


class OutboxError(CreditCheckError):
    """The feedback outbox could not store or read a record.

    Attributes:
        decision: when ``check()`` made a decision but could not record it, that Decision
            (DESIGN rule 13: a decision that was made is enforced; a DENY is refused even
            when its record could not be written). None otherwise.
    """

    def __init__(self, message: str, *, decision: Any = None) -> None:
        super().__init__(message)
        self.decision = decision


class UnknownDecision(CreditCheckError, KeyError):
    """``report()`` named a decision id that this checker's outbox does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown decision"


class UnknownCommitment(CreditCheckError, KeyError):
    """``fulfil()`` or ``waive()`` named a commitment id that the ledger does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown commitment"


class InvalidArgument(CreditCheckError, ValueError):
    """An argument of a call is malformed or not allowed here; the message names it and
    says what to give instead."""


class InvalidReceipt(InvalidServiceData):
    """A check receipt (查询凭证) that is malformed, signed by a key not given, fails its
    signature, or does not describe the answer it came with."""
