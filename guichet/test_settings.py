"""Settings for the test suite: the real settings, with test-only defaults."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("GUICHET_TESTING", "true")
os.environ.setdefault("GUICHET_VAR_DIR", tempfile.mkdtemp(prefix="guichet-test-"))

from guichet.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A file, not memory, so that tests can start real worker processes on the same database.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
