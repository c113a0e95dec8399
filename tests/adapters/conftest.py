"""Adapter tests share the middleware tests' fake checker; Django is configured once here."""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

# The fakes live with the middleware tests; test folders have no __init__.py to import by.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "middleware"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django_site import CREDIT_CHECK

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
