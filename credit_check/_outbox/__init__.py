"""The feedback outbox (执行反馈, DESIGN §8): journals written on the request path, a
delivery store, one sender per data directory, and the ``credit-check outbox`` commands.

    check() ──one write──▶ journal/<pid>-<id>.jnl ──sender: import──▶ outbox.sqlite3
                                                                  └──deliver──▶ POST /v1/feedback
"""

from __future__ import annotations

from credit_check._outbox._outbox import Outbox
from credit_check._outbox._sender import Sender, clean_reason
from credit_check._outbox._store import Store
from credit_check._outbox._types import OUTBOX_FILE, Claimed, OutboxStatus

__all__ = ["OUTBOX_FILE", "Claimed", "Outbox", "OutboxStatus", "Sender", "Store",
           "clean_reason"]
