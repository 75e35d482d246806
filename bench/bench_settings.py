"""Settings for the benchmarks' worker subprocesses (and their own process): guichet.settings,
with acknowledgements "sent" to memory (no network, no files) and Django's debug query log off.

    DJANGO_SETTINGS_MODULE=bench.bench_settings  (PYTHONPATH must include the repository root)

guichet.settings does not read EMAIL_BACKEND from the environment, hence this module. The
benchmarks set GUICHET_DEBUG=true only so that the settings need no SECRET_KEY or outgoing
SMTP relay; DEBUG itself is switched off again here, as in production: with DEBUG on, Django
keeps the last 9,000 queries of every connection with their parameters (a 137 KB attachment
INSERT included), which costs CPU and memory a production server does not pay.
"""

from guichet.settings import *  # noqa: F403

DEBUG = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
