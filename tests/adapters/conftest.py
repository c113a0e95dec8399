"""Adapter tests share the middleware tests' fake checker; Django is configured once here."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
from django.conf import settings

# The fakes live with the middleware tests; test folders have no __init__.py to import by.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "middleware"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django_site import CREDIT_CHECK
from _unrecorded import Sandboxed, sandboxed

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="credit-check-tests",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="_django_site",
        MIDDLEWARE=["credit_check.adapters.django.CreditCheckMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
        CREDIT_CHECK=CREDIT_CHECK,
    )
    django.setup()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxed]:
    """The real sandbox and a real Checker, and its twin whose records cannot be written."""
    with sandboxed(tmp_path_factory.mktemp("adapters-sandbox")) as made:
        yield made
