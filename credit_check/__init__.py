"""credit-check: 逢办必查 — a credit check at every transaction.

Validate the applicant's identifier, look it up against the red and black lists through a
local hashed snapshot and a cache, apply the measure catalogue, and report what was done.
"""

from __future__ import annotations

from credit_check._checker import Checker
from credit_check._checker_types import CheckerStatus, DecisionGroup
from credit_check._exceptions import (
    CatalogError,
    ConfigurationError,
    CreditCheckError,
    InvalidArgument,
    InvalidReceipt,
    InvalidServiceData,
    InvalidSubjectId,
    OutboxError,
    ServiceError,
    ServiceRejected,
    ServiceUnavailable,
    UnknownCommitment,
    UnknownDecision,
)
from credit_check._ids import (
    PilotCodeWarning,
    mask_id,
    normalize_id,
    validate_id_number,
    validate_org_code,
    validate_uscc,
)
from credit_check._lifecycle._ledger import Commitment
from credit_check._metrics import enable_metrics, enable_tracing, metrics_registry
from credit_check._middleware._asgi import CreditCheckASGIMiddleware
from credit_check._middleware._routes import (
    FromForm,
    FromHeader,
    FromJSON,
    FromPath,
    FromQuery,
    Route,
)
from credit_check._middleware._wsgi import CreditCheckWSGIMiddleware
from credit_check._models import (
    AppliedMeasure,
    Catalog,
    Decision,
    Effect,
    EntryStatus,
    FeedbackRecord,
    Layer,
    ListDefinition,
    ListEntry,
    ListKind,
    Measure,
    Outcome,
    RelatedPerson,
    Scenario,
    ScenarioDefinition,
    Subject,
    SubjectKind,
    Target,
    Transaction,
)
from credit_check._readiness import Readiness
from credit_check._receipts import Receipt, ServiceReceipt, SnapshotReceipt
from credit_check._settings import Settings

__version__ = "0.1.0"

__all__ = [
    "AppliedMeasure",
    "Catalog",
    "CatalogError",
    "Checker",
    "CheckerStatus",
    "Commitment",
    "ConfigurationError",
    "CreditCheckASGIMiddleware",
    "CreditCheckError",
    "CreditCheckWSGIMiddleware",
    "Decision",
    "DecisionGroup",
    "Effect",
    "EntryStatus",
    "FeedbackRecord",
    "FromForm",
    "FromHeader",
    "FromJSON",
    "FromPath",
    "FromQuery",
    "InvalidArgument",
    "InvalidReceipt",
    "InvalidServiceData",
    "InvalidSubjectId",
    "Layer",
    "ListDefinition",
    "ListEntry",
    "ListKind",
    "Measure",
    "OutboxError",
    "Outcome",
    "PilotCodeWarning",
    "Readiness",
    "Receipt",
    "RelatedPerson",
    "Route",
    "Scenario",
    "ScenarioDefinition",
    "ServiceError",
    "ServiceReceipt",
    "ServiceRejected",
    "ServiceUnavailable",
    "Settings",
    "SnapshotReceipt",
    "Subject",
    "SubjectKind",
    "Target",
    "Transaction",
    "UnknownCommitment",
    "UnknownDecision",
    "enable_metrics",
    "enable_tracing",
    "mask_id",
    "metrics_registry",
    "normalize_id",
    "validate_id_number",
    "validate_org_code",
    "validate_uscc",
]
