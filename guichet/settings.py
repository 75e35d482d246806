"""Guichet settings: every deploy-varying value comes from the environment (see .env.example)."""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from guichet.env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(env_str("GUICHET_VAR_DIR", str(Path.cwd() / "var"))).resolve()

DEBUG = env_bool("GUICHET_DEBUG", False)
TESTING = env_bool("GUICHET_TESTING", False)


def _secret_key() -> str:
    key = env_secret("SECRET_KEY")
    if key:
        return key
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when DEBUG is off.")
    # A local demo keeps one random key under var/ so sessions survive a restart.
    path = VAR_DIR / "secret_key"
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG or TESTING else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "guichet.core",
    "guichet.directory",
    "guichet.accounts",
    "guichet.intake",
    "guichet.routing",
    "guichet.casework",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "guichet.core.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "guichet.urls"
WSGI_APPLICATION = "guichet.wsgi.application"
ASGI_APPLICATION = "guichet.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "guichet.core.context_processors.guichet",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("GUICHET_SQLITE_PATH", str(VAR_DIR / "guichet.sqlite3")),
            # IMMEDIATE transactions and WAL let the web, SMTP and worker threads write
            # concurrently without "database is locked" failures in the middle of a transaction.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_redis_url = env_str("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _redis_url}
        if _redis_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "agent:login"
LOGIN_REDIRECT_URL = "agent:queue"
LOGOUT_REDIRECT_URL = "agent:login"

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("GUICHET_TIME_ZONE", "Europe/Paris")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True

# Security defaults; HTTPS-only flags switch on behind TLS.
_https = env_bool("GUICHET_HTTPS", not (DEBUG or TESTING))
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_SSL_REDIRECT = env_bool("GUICHET_SSL_REDIRECT", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("GUICHET_BEHIND_PROXY", False) else None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 8 * 3600
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "guichet.core.views.csrf_failure"
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Outgoing mail: SMTP when configured, otherwise files under var/mail/ for a local demo.
EMAIL_HOST = env_str("GUICHET_SMTP_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("GUICHET_SMTP_PORT", 25, minimum=1)
    EMAIL_HOST_USER = env_str("GUICHET_SMTP_USER")
    EMAIL_HOST_PASSWORD = env_secret("GUICHET_SMTP_PASSWORD")
    EMAIL_USE_TLS = env_bool("GUICHET_SMTP_STARTTLS", False)
    EMAIL_USE_SSL = env_bool("GUICHET_SMTP_SSL", False)
    EMAIL_TIMEOUT = env_int("GUICHET_SMTP_TIMEOUT", 20, minimum=1)
elif DEBUG or TESTING:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
else:
    raise ImproperlyConfigured("GUICHET_SMTP_HOST is required when DEBUG is off (outgoing mail).")

# The single public address and the service's own identity.
GUICHET_ADDRESS = env_str("GUICHET_ADDRESS", "contact@guichet.localhost")
GUICHET_FROM_NAME = env_str("GUICHET_FROM_NAME", "Guichet unique de la Région")
GUICHET_PUBLIC_URL = env_str("GUICHET_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
GUICHET_TRACKING_PREFIX = env_str("GUICHET_TRACKING_PREFIX", "ARA")
GUICHET_REGION_NAME = env_str("GUICHET_REGION_NAME", "Région Auvergne-Rhône-Alpes")
GUICHET_ADMINISTRATIVE_COURT = env_str("GUICHET_ADMINISTRATIVE_COURT", "Tribunal administratif de Lyon, 184 rue Duguesclin, 69433 Lyon Cedex 03")
GUICHET_RECEPTION = {
    "name": env_str("GUICHET_RECEPTION_NAME", "Guichet unique — accueil des demandes"),
    "postal_address": env_str("GUICHET_RECEPTION_ADDRESS", "Hôtel de Région, 1 esplanade François Mitterrand, CS 20033, 69269 Lyon Cedex 02"),
    "phone": env_str("GUICHET_RECEPTION_PHONE", "04 26 73 40 00"),
    "email": env_str("GUICHET_ADDRESS", "contact@guichet.localhost"),
}

# Intake limits.
GUICHET_MAX_REQUEST_BYTES = env_int("GUICHET_MAX_REQUEST_BYTES", 15 * 1024 * 1024, minimum=1024)
GUICHET_MAX_FORM_ATTACHMENTS = env_int("GUICHET_MAX_FORM_ATTACHMENTS", 5, minimum=0)
GUICHET_MAX_MAIL_ATTACHMENTS = env_int("GUICHET_MAX_MAIL_ATTACHMENTS", 20, minimum=0)
# The SMTP size limit covers MIME overhead (base64 grows content by a third).
GUICHET_SMTP_MAX_BYTES = env_int("GUICHET_SMTP_MAX_BYTES", GUICHET_MAX_REQUEST_BYTES * 4 // 3 + 1024 * 1024, minimum=1024)
GUICHET_SMTP_HOST = env_str("GUICHET_SMTPD_HOST", "127.0.0.1")
GUICHET_SMTP_PORT = env_int("GUICHET_SMTPD_PORT", 2525, minimum=1)
GUICHET_ACCEPTED_RECIPIENTS = env_list("GUICHET_ACCEPTED_RECIPIENTS", [GUICHET_ADDRESS])
# Optional STARTTLS on the intake: a certificate (and key) in PEM files.
GUICHET_SMTPD_TLS_CERT = env_str("GUICHET_SMTPD_TLS_CERT")
GUICHET_SMTPD_TLS_KEY = env_str("GUICHET_SMTPD_TLS_KEY")
GUICHET_SMTPD_REQUIRE_TLS = env_bool("GUICHET_SMTPD_REQUIRE_TLS", False)

# IMAP polling of an existing mailbox (optional; `guichet imap_poll`, and `serve` when set).
GUICHET_IMAP_HOST = env_str("GUICHET_IMAP_HOST")
GUICHET_IMAP_SSL = env_bool("GUICHET_IMAP_SSL", True)
GUICHET_IMAP_STARTTLS = env_bool("GUICHET_IMAP_STARTTLS", False)
GUICHET_IMAP_PORT = env_int("GUICHET_IMAP_PORT", 993 if GUICHET_IMAP_SSL else 143, minimum=1)
GUICHET_IMAP_USER = env_str("GUICHET_IMAP_USER")
GUICHET_IMAP_PASSWORD = env_secret("GUICHET_IMAP_PASSWORD")
GUICHET_IMAP_FOLDER = env_str("GUICHET_IMAP_FOLDER", "INBOX")
GUICHET_IMAP_PROCESSED_FOLDER = env_str("GUICHET_IMAP_PROCESSED_FOLDER", "Guichet/Traité")
GUICHET_IMAP_POLL_SECONDS = env_int("GUICHET_IMAP_POLL_SECONDS", 60, minimum=1)
# RFC 2177: re-issue IDLE before 29 minutes.
GUICHET_IMAP_IDLE_SECONDS = env_int("GUICHET_IMAP_IDLE_SECONDS", 300, minimum=10)

# Attachments: each one's size limit, and an optional ClamAV daemon (socket, or host and port).
GUICHET_MAX_ATTACHMENT_BYTES = env_int("GUICHET_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024, minimum=1024)
GUICHET_CLAMD_SOCKET = env_str("GUICHET_CLAMD_SOCKET")
GUICHET_CLAMD_HOST = env_str("GUICHET_CLAMD_HOST")
GUICHET_CLAMD_PORT = env_int("GUICHET_CLAMD_PORT", 3310, minimum=1)
# DKIM signatures are checked (DNS lookups) when no trusted Authentication-Results is present.
GUICHET_DKIM_VERIFY = env_bool("GUICHET_DKIM_VERIFY", True)

# Mail loops and noise: at most this many acknowledgements to one address per hour.
GUICHET_ACK_MAX_PER_HOUR = env_int("GUICHET_ACK_MAX_PER_HOUR", 5, minimum=0)
# A reply to a request closed longer ago than this opens a new, linked request instead.
GUICHET_REOPEN_WITHIN_DAYS = env_int("GUICHET_REOPEN_WITHIN_DAYS", 30, minimum=0)
# Only Authentication-Results headers added by these hosts (our own MTA) are trusted.
GUICHET_TRUSTED_AUTHSERV_IDS = env_list("GUICHET_TRUSTED_AUTHSERV_IDS")
# The worker retries a stuck or failed submission after this delay.
GUICHET_SWEEP_AFTER_SECONDS = env_int("GUICHET_SWEEP_AFTER_SECONDS", 60, minimum=0)

# Routing v0 keeps a request in triage below this keyword-rule confidence.
GUICHET_ROUTING_THRESHOLD = float(env_str("GUICHET_ROUTING_THRESHOLD", "0.5"))
# Precision the router's per-code thresholds aim at when a model is trained, measured by
# cross-validation of its training examples (see TrainingConfig.target_precision). A Région
# whose training data is mostly its own mail, rather than the shipped decoy-dense corpus,
# should raise it to 0.97 after measuring with `guichet evaluate_routing`.
GUICHET_ROUTING_TARGET_PRECISION = float(env_str("GUICHET_ROUTING_TARGET_PRECISION", "0.965"))
# A message is split into sub-requests when paragraphs go to different codes above this.
GUICHET_SPLIT_MIN_CONFIDENCE = float(env_str("GUICHET_SPLIT_MIN_CONFIDENCE", "0.8"))
# Transmission to an outside authority (CRPA L114-2) without a human, above this confidence.
GUICHET_AUTO_FORWARD = env_bool("GUICHET_AUTO_FORWARD", True)
GUICHET_AUTO_FORWARD_MIN_CONFIDENCE = float(env_str("GUICHET_AUTO_FORWARD_MIN_CONFIDENCE", "0.9"))

# Outbox: retries with exponential backoff, then the message waits for an operator.
GUICHET_OUTBOX_MAX_ATTEMPTS = env_int("GUICHET_OUTBOX_MAX_ATTEMPTS", 12, minimum=1)
GUICHET_PUBLIC_RATE_LIMIT = env_int("GUICHET_PUBLIC_RATE_LIMIT", 20, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("GUICHET_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "mail.log": {"level": "WARNING"},
    },
}

# Safety nets the worker runs periodically (dotted paths to functions without arguments).
GUICHET_PERIODIC_JOBS = [
    "guichet.core.outbox.outbox_flush",
    "guichet.casework.sweeps.submissions_retry_due",
    "guichet.routing.retraining.router_retrain_if_due",
]
# The router learns from agents' corrections at most this often.
GUICHET_RETRAIN_HOURS = env_int("GUICHET_RETRAIN_HOURS", 24, minimum=1)
GUICHET_PERIODIC_SECONDS = env_int("GUICHET_PERIODIC_SECONDS", 30, minimum=1)
STATICFILES_DIRS = [BASE_DIR / "static"]
