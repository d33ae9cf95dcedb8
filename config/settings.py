"""Settings, all from the environment (django-environ).

With nothing set the app runs on SQLite with Celery tasks executed eagerly, so a newcomer
needs nothing installed. Production sets DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis).
"""

import datetime as dt
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
    CSRF_TRUSTED_ORIGINS=(list, []),
    TIME_ZONE=(str, "UTC"),
    CELERY_BROKER_URL=(str, ""),
    SECURE_SSL_REDIRECT=(bool, True),
    SECURE_HSTS_SECONDS=(int, 60 * 60 * 24 * 365),
    API_THROTTLE_USER=(str, "6000/minute"),
    API_THROTTLE_ANON=(str, "60/minute"),
    IDEMPOTENCY_KEY_TTL_HOURS=(int, 48),
    IDEMPOTENCY_LEASE_SECONDS=(int, 60),
    OUTBOX_SWEEP_SECONDS=(int, 5),
    OUTBOX_PUBLISH_LEASE_SECONDS=(int, 300),
    OUTBOX_RUN_LEASE_SECONDS=(int, 60),
    OUTBOX_RETENTION_DAYS=(int, 7),
    OUTBOX_FAILED_RETENTION_DAYS=(int, 30),
    CELERY_QUEUE=(str, "celery"),
    EMAIL_TIMEOUT=(int, 10),
    INSIGHT_CACHE_SECONDS=(int, 300),
    CODE_VALIDATION_RETENTION_DAYS=(int, 90),
    CODE_FAILED_VALIDATION_LIMIT=(int, 10),
    CODE_FAILED_VALIDATION_WINDOW_SECONDS=(int, 600),
    CODE_LOCKOUT_SECONDS=(int, 900),
    CODE_RAPID_REDEMPTION_LIMIT=(int, 5),
    CODE_RAPID_REDEMPTION_WINDOW_SECONDS=(int, 3600),
    CODE_BATCH_MAX_COUNT=(int, 5_000_000),
    TRUSTED_PROXIES=(list, []),
    AXES_FAILURE_LIMIT=(int, 5),
    AXES_COOLOFF_MINUTES=(int, 15),
    BRAND_NAME=(str, "Loyalty"),
    WEBHOOK_QUEUE=(str, "webhooks"),
    EVENT_RETENTION_DAYS=(int, 90),
    WEBHOOK_TIMEOUT_SECONDS=(int, 10),
    WEBHOOK_BACKOFF_SECONDS=(int, 30),
    WEBHOOK_MAX_BACKOFF_SECONDS=(int, 3600),
    WEBHOOK_MAX_ATTEMPTS=(int, 32),
    WEBHOOK_BEAT_SECONDS=(int, 5),
    WEBHOOK_ALLOWED_HOSTS=(list, []),
    WEBHOOK_ALLOWED_NETWORKS=(list, []),
    EVENTS_FEED_SETTLE_SECONDS=(int, 2),
)
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env("DEBUG")
# A development key only works with DEBUG on; production must set SECRET_KEY.
SECRET_KEY = env("SECRET_KEY", default="dev-insecure-key-only-for-local-use" if DEBUG else None)
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=true for local development).")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here (the CSP allows nothing else)
    "csp",
    "simple_history",
    "import_export",
    "loyalty",
    "promotions",
    "redemptions",
    "retro",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early, so its header goes on every answer, the sign-in lockout page (AxesMiddleware) included.
    "csp.middleware.CSPMiddleware",
    "loyalty.middleware.PermissionsPolicyMiddleware",
    "loyalty.middleware.RefuseNullCharactersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last: turns a locked-out sign-in into the login page with the lockout message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for a writer instead of failing with "database is locked": take the write lock when a
    # transaction begins (a deferred one that reads first and then writes fails at once, whatever
    # the timeout, when another request writes in between).
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("timeout", 20)
    options.setdefault("transaction_mode", "IMMEDIATE")
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

# A read replica (streaming replication) for change lists, exports and reports: loyalty/replica.py.
READ_REPLICA = ""
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    DATABASES["replica"].setdefault("CONN_MAX_AGE", DATABASES["default"].get("CONN_MAX_AGE", 0))
    DATABASES["replica"].setdefault("CONN_HEALTH_CHECKS", True)
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}  # tests: the replica is the test database
    READ_REPLICA = "replica"
DATABASE_ROUTERS = ["loyalty.replica.ReplicaRouter"]

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# The dashboard's and GET /reports/summary/'s figures are reused for this long (loyalty.insight).
INSIGHT_CACHE_SECONDS = env("INSIGHT_CACHE_SECONDS")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Sign-in lockout (django-axes) ------------------------------------------------------------
# AXES_FAILURE_LIMIT wrong passwords for one username from one IP lock that pair out for
# AXES_COOLOFF_MINUTES (each further try during the lockout starts it again). The attempts are
# rows in the database (the Axes admin screens list them; deleting one unlocks), so every web
# process sees the same count. The API's keys never go through authenticate(): not affected.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env("AXES_FAILURE_LIMIT")
AXES_COOLOFF_TIME = dt.timedelta(minutes=env("AXES_COOLOFF_MINUTES"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # every failed sign-in stays on the Access failures screen
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_CLIENT_IP_CALLABLE = "loyalty.network.client_ip"
AXES_LOCKOUT_CALLABLE = "loyalty.admin.signin.lockout_response"
AXES_VERBOSE = False  # no start-up banner on every manage.py command; lockouts are still logged

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

vars().update(env.email("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="loyalty@example.com")
# A mail server that hangs must not hold a worker past its outbox lease (Django's default: forever).
EMAIL_TIMEOUT = env("EMAIL_TIMEOUT")
# The name member emails are signed with (templates/emails/layout.*).
BRAND_NAME = env("BRAND_NAME")

# --- Security (production values unless DEBUG) -----------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env("SECURE_SSL_REDIRECT")
    SECURE_HSTS_SECONDS = env("SECURE_HSTS_SECONDS")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy (django-csp) on every answer: scripts and styles only from this site or
# with the request's nonce (our templates' inline style and script elements carry it), no
# inline event handlers, no framing, forms post only here. Swagger UI is self-hosted (sidecar).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Browser features no page here uses (loyalty.middleware.PermissionsPolicyMiddleware).
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"

# --- REST framework ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "loyalty.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["loyalty.api.permissions.ModelPermissions"],
    "DEFAULT_PAGINATION_CLASS": "loyalty.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"user": env("API_THROTTLE_USER"), "anon": env("API_THROTTLE_ANON")},
    "DEFAULT_PARSER_CLASSES": [
        "loyalty.api.parsers.JSONParser",
        "loyalty.api.parsers.FormParser",
        "loyalty.api.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "loyalty.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "loyalty.api.schema.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty & promotions back office API",
    "DESCRIPTION": "Integration API (v1) for POS, checkout, CRM and mobile clients.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "GET_LIB_DOC_EXCLUDES": "loyalty.api.schema.lib_doc_excludes",
}
IDEMPOTENCY_KEY_TTL_HOURS = env("IDEMPOTENCY_KEY_TTL_HOURS")
# A request still running with a key holds it this long; a retry after that may run again.
IDEMPOTENCY_LEASE_SECONDS = env("IDEMPOTENCY_LEASE_SECONDS")

# --- Codes: retention of validation attempts, brute-force lockout, rapid-redemption flags ----------
# Counters live in the cache: use a shared cache (CACHE_URL=redis://...) when running several workers.
CODE_VALIDATION_RETENTION_DAYS = env("CODE_VALIDATION_RETENTION_DAYS")
CODE_FAILED_VALIDATION_LIMIT = env("CODE_FAILED_VALIDATION_LIMIT")
CODE_FAILED_VALIDATION_WINDOW_SECONDS = env("CODE_FAILED_VALIDATION_WINDOW_SECONDS")
CODE_LOCKOUT_SECONDS = env("CODE_LOCKOUT_SECONDS")
CODE_RAPID_REDEMPTION_LIMIT = env("CODE_RAPID_REDEMPTION_LIMIT")
CODE_RAPID_REDEMPTION_WINDOW_SECONDS = env("CODE_RAPID_REDEMPTION_WINDOW_SECONDS")
CODE_BATCH_MAX_COUNT = env("CODE_BATCH_MAX_COUNT")
# Reverse proxies whose X-Forwarded-For is believed when finding a client's IP (code lockouts).
TRUSTED_PROXIES = env("TRUSTED_PROXIES")

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
# No broker configured: run tasks inline (the embedded default).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
# Publishing must never hang a request: no publish retries, no reconnect loop (max_retries 0)
# and short socket timeouts. A message that could not be published stays in the outbox.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 60 * 60,
    "max_retries": 0,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_TIMEZONE = "UTC"
# The queue every task goes to (run the worker with -Q the same when it is not "celery").
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE")

# --- Outbox (loyalty/outbox.py; docs/operations.md "The outbox") ----------------------------
OUTBOX_SWEEP_SECONDS = env("OUTBOX_SWEEP_SECONDS")
OUTBOX_PUBLISH_LEASE_SECONDS = env("OUTBOX_PUBLISH_LEASE_SECONDS")
OUTBOX_RUN_LEASE_SECONDS = env("OUTBOX_RUN_LEASE_SECONDS")
OUTBOX_RETENTION_DAYS = env("OUTBOX_RETENTION_DAYS")
OUTBOX_FAILED_RETENTION_DAYS = env("OUTBOX_FAILED_RETENTION_DAYS")
# --- Events and webhooks (loyalty/events/; docs/operations.md "Webhooks") -----------------------
WEBHOOK_QUEUE = env("WEBHOOK_QUEUE")  # run a worker with -Q <this>; empty: the default queue
EVENT_RETENTION_DAYS = env("EVENT_RETENTION_DAYS")  # events and their deliveries; 0: kept forever
WEBHOOK_TIMEOUT_SECONDS = env("WEBHOOK_TIMEOUT_SECONDS")
# Retries: WEBHOOK_BACKOFF_SECONDS doubling up to WEBHOOK_MAX_BACKOFF_SECONDS, WEBHOOK_MAX_ATTEMPTS
# attempts in all (the defaults: 30 s ... 1 h, 32 attempts, about 25 hours), then failed.
WEBHOOK_BACKOFF_SECONDS = env("WEBHOOK_BACKOFF_SECONDS")
WEBHOOK_MAX_BACKOFF_SECONDS = env("WEBHOOK_MAX_BACKOFF_SECONDS")
WEBHOOK_MAX_ATTEMPTS = env("WEBHOOK_MAX_ATTEMPTS")
WEBHOOK_BEAT_SECONDS = env("WEBHOOK_BEAT_SECONDS")
# SSRF guard: receivers on loopback, link-local, private or reserved addresses are refused, except
# with DEBUG (and in the tests) or for the hosts and networks (CIDR) listed here.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=DEBUG)
WEBHOOK_ALLOWED_HOSTS = env("WEBHOOK_ALLOWED_HOSTS")
WEBHOOK_ALLOWED_NETWORKS = env("WEBHOOK_ALLOWED_NETWORKS")
# The feed (GET /events/) shows events this many seconds old at least, so that an event whose
# transaction committed after a later-numbered one is never skipped by a poller's cursor.
EVENTS_FEED_SETTLE_SECONDS = env("EVENTS_FEED_SETTLE_SECONDS")

CELERY_BEAT_SCHEDULE = {
    "expire-points": {"task": "loyalty.tasks.expire_points", "schedule": crontab(hour=2, minute=5)},
    "activate-pending-points": {"task": "loyalty.tasks.activate_pending_points", "schedule": 60 * 15},
    # Daily: the first run after a period boundary moves members down to what they qualified for.
    "requalify-tiers": {"task": "loyalty.tasks.requalify_tiers", "schedule": crontab(hour=3, minute=5)},
    "expire-codes": {"task": "promotions.tasks.expire_codes", "schedule": crontab(minute=15)},
    "purge-code-validations": {
        "task": "promotions.tasks.purge_code_validations",
        "schedule": crontab(hour=4, minute=5),
    },
    # Publishes what the outbox still holds: the broker was down, a worker died, a retry is due.
    "sweep-outbox": {
        "task": "loyalty.tasks.sweep_outbox",
        "schedule": OUTBOX_SWEEP_SECONDS,
        "options": {"expires": OUTBOX_SWEEP_SECONDS * 2},
    },
    "purge-outbox": {"task": "loyalty.tasks.purge_outbox", "schedule": crontab(hour=4, minute=35)},
    "purge-events": {"task": "loyalty.tasks.purge_events", "schedule": crontab(hour=4, minute=45)},
    # Webhook deliveries due now (new ones, and retries whose backoff ended) onto their queue.
    "deliver-webhooks": {
        "task": "loyalty.tasks.deliver_webhooks",
        "schedule": WEBHOOK_BEAT_SECONDS,
        "options": {"expires": WEBHOOK_BEAT_SECONDS * 2},
    },
    "send-expiry-reminders": {"task": "loyalty.tasks.send_expiry_reminders", "schedule": crontab(hour=9, minute=5)},
    "expire-awards": {"task": "redemptions.tasks.expire_awards", "schedule": crontab(minute=25)},
    "purge-idempotency-records": {
        "task": "loyalty.tasks.purge_idempotency_records",
        "schedule": 60 * 60 * 6,
    },
    # The report's daily rollup: yesterday once it is closed (hourly, so any TIME_ZONE's midnight is
    # followed within the hour; a run with nothing to close is one small query).
    "close-insight-days": {"task": "loyalty.tasks.close_insight_days", "schedule": crontab(minute=20)},
    # The home page's and the dashboard's default 30 days, recomputed before the cache expires.
    "refresh-insight-report": {
        "task": "loyalty.tasks.refresh_insight_report",
        "schedule": max(INSIGHT_CACHE_SECONDS - 60, 30),
        "options": {"expires": max(INSIGHT_CACHE_SECONDS - 60, 30)},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
