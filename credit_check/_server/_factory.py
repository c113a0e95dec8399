"""An application factory for running the sandbox under a plain uvicorn (or any ASGI
server): ``uvicorn --factory credit_check._server:app_from_env``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from starlette.applications import Starlette

from credit_check._pg import is_postgres_url, redact
from credit_check._server._app import create_app
from credit_check._server._runner import open_sandbox

logger = logging.getLogger("credit_check.sandbox")


def app_from_env() -> Starlette:
    """The sandbox configured from ``CREDIT_CHECK_SANDBOX_DB`` (a SQLite file, default
    ``credit-check-sandbox.db``, or a ``postgresql://`` URL with
    ``CREDIT_CHECK_SIGNING_KEY_FILE`` and ``CREDIT_CHECK_SANDBOX_DATA_KEY_FILE``),
    ``CREDIT_CHECK_SANDBOX_DEMO`` (``1`` loads the demo data) and
    ``CREDIT_CHECK_ADMIN_KEY``."""
    text = os.environ.get("CREDIT_CHECK_SANDBOX_DB", "credit-check-sandbox.db")
    db: str | Path = text if is_postgres_url(text) else Path(text)
    demo = os.environ.get("CREDIT_CHECK_SANDBOX_DEMO", "") in {"1", "true", "yes"}
    store, signer, admin_key, _ = open_sandbox(db, demo=demo)
    shown = redact(str(db))
    logger.warning("sandbox database %s; the demo department key and the admin key are "
                   "printed by 'credit-check serve --db %s'", shown, shown)
    return create_app(store, signer, admin_key)
