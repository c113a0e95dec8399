"""Framework adapters (Django, Flask, FastAPI), installed as ``credit_check.adapters``."""
