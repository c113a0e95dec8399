"""The sandbox list service: protocol v1 over SQLite or PostgreSQL, with fictional demo data."""

from __future__ import annotations

from credit_check._server._app import create_app
from credit_check._server._factory import app_from_env
from credit_check._server._runner import SandboxServer, open_sandbox

__all__ = ["SandboxServer", "app_from_env", "create_app", "open_sandbox"]
