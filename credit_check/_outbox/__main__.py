"""``python -m credit_check._outbox``: the sender process a Checker starts (see ``_process``)."""

from __future__ import annotations

import sys

from credit_check._outbox._process import main

sys.exit(main())
