"""Settings, all read from the environment (see docs/operate/configuration.md, generated from this file).

Defaults give a product that runs on a fresh machine with nothing installed:
SQLite in ./var and a file-system Celery broker. Production sets DATABASE_URL
(PostgreSQL) and CELERY_BROKER_URL (Redis or RabbitMQ).
"""
import datetime
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.database import database_prepare
from config.keys import INSECURE_SECRET_KEY, var_dir
from config.logformat import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state: SQLite file, file-system broker, keys, demo logins (VAR_DIR moves it: bench runs).
VAR_DIR = var_dir()
VAR_DIR.mkdir(mode=0o700, exist_ok=True)
try:
    VAR_DIR.chmod(0o700)  # the SQLite file, the broker's messages, keys and logins: the owner's only
except PermissionError:  # a folder the process may write but does not own (a mounted volume): keep its mode
    pass

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Security ---------------------------------------------------------------
# Django's debug mode: error pages with tracebacks and settings. Never in production; only with it may the
# shipped secret key be used.
DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _kept(name: str) -> str:
    """A key command 1 generated and keeps in var/ (config/keys.py), or empty."""
    path = VAR_DIR / name
    return path.read_text().strip() if path.exists() else ""


# Django's secret key (sessions, signed values). INSECURE_SECRET_KEY (config/keys.py) only lets a development
# checkout start (DJANGO_DEBUG on); without debug the processes refuse it (dispatcher/checks.py), as they refuse
# to run without WEBHOOK_SECRETS_KEYS. Default: the key command 1 keeps in var/secret-key, else INSECURE_SECRET_KEY.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_kept("secret-key") or INSECURE_SECRET_KEY)
# Host names the web process answers (comma-separated); behind a proxy, the public one.
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Origins trusted for the admin's forms behind a proxy, e.g. https://crm.example.com.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS ----------------------------------------------------------------------
# Behind TLS (docs/operate/deployment.md): `check --deploy` is clean once these are set.

# Plain-HTTP requests are redirected to HTTPS.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# Seconds browsers are told to use only HTTPS for this site (HSTS); 0 sends no HSTS header.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
# HSTS covers the subdomains too.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
# HSTS asks to be preloaded by browsers.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# The session cookie only over HTTPS.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=SECURE_SSL_REDIRECT)
# The CSRF cookie only over HTTPS.
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=SECURE_SSL_REDIRECT)
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):  # trust X-Forwarded-Proto: https from the proxy in front
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Applications -------------------------------------------------------------
INSTALLED_APPS = [
    "config.apps.CrmAdminConfig",  # django.contrib.admin on the project's admin site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "ninja",  # the REST API's docs page assets (config/api.py)
    "crm",
    "dispatcher",
    "workflows",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "crm.api.middleware.ApiProblemMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a locked-out login into its answer
]
# --- Admin logins ---------------------------------------------------------------
# Admin logins: after AXES_FAILURE_LIMIT wrong passwords for one user name, from any address, that user name is
# locked out for AXES_COOLOFF_MINUTES (django-axes; the API authenticates by key and has its own throttles).
# The user name too: locking only the pair (user name, address) let a locked user name go on from another
# address. The user name's count is never below the pair's, so it decides; the pair is kept for axes' own
# check (W006 warns when no lockout parameter has the address).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)  # wrong passwords for a user name before it is locked
# Minutes a locked-out user name stays locked.
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]
AXES_RESET_ON_SUCCESS = True
# Proxies in front whose X-Forwarded-For counts, for the lockout and the REST API's per-address throttle: the
# client is the entry that many from its end. None: the client is the address that connected.
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=None)
# The client's address as the API throttles see it (django-ipware is not installed, so axes would otherwise
# read REMOTE_ADDR only and ignore AXES_PROXY_COUNT).
AXES_CLIENT_IP_CALLABLE = "crm.api.throttle.client_address"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# --- Database -------------------------------------------------------------------
DATABASES = {
    # e.g. postgres://user:pw@db:5432/webhooks: PostgreSQL in production. Default: SQLite in VAR_DIR/db.sqlite3.
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
# Seconds a database connection is reused (0: one per request or task).
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
# The pooler DATABASE_URL goes through (PgBouncer; docs/operate/scaling.md): empty for none, `session` or
# `transaction` for its pool mode. Either: the session timeouts below are not sent (a pooler refuses startup
# options; set them on the role). `transaction`: also no server-side cursors and no awake drain (LISTEN and
# its advisory lock need a session of their own).
DATABASE_POOLER = env.str("DATABASE_POOLER", default="")
if DATABASE_POOLER not in {"", "session", "transaction"}:
    raise ImproperlyConfigured(f"DATABASE_POOLER is {DATABASE_POOLER!r}: leave it empty, or set session or transaction.")
# PostgreSQL: seconds a session may sit idle inside a transaction before the server ends it (rolled back, its
# row locks freed: a worker cut off mid-transaction loses its deliveries to the others); 0 leaves the server's
# (or the role's) own setting. Default: 60, or 0 with DATABASE_POOLER (then set it on the role).
DATABASE_IDLE_IN_TRANSACTION_TIMEOUT = env.float("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT",
                                                 default=0.0 if DATABASE_POOLER else 60.0)
# PostgreSQL: seconds one statement may run (0: no limit). If wanted, for web, worker and beat only, not for
# `migrate`: an index build on a large log takes longer.
DATABASE_STATEMENT_TIMEOUT = env.float("DATABASE_STATEMENT_TIMEOUT", default=0.0)
_keepalives = (
    env.int("DATABASE_KEEPALIVES_IDLE", default=30),  # PostgreSQL: seconds of silence before a TCP keepalive
    env.int("DATABASE_KEEPALIVES_INTERVAL", default=10),  # PostgreSQL: seconds between two keepalive probes
    env.int("DATABASE_KEEPALIVES_COUNT", default=3),  # PostgreSQL: unanswered probes that end the connection
)
# PostgreSQL: seconds data sent may stay unacknowledged (the database host gone mid-statement) before the
# connection is given up. Default: as long as unanswered keepalives take, idle + interval × count (60).
DATABASE_TCP_USER_TIMEOUT = env.float("DATABASE_TCP_USER_TIMEOUT",
                                      default=_keepalives[0] + _keepalives[1] * _keepalives[2])
database_prepare(DATABASES["default"], pooler=DATABASE_POOLER, keepalives=_keepalives,
                 idle_in_transaction_timeout=DATABASE_IDLE_IN_TRANSACTION_TIMEOUT,
                 statement_timeout=DATABASE_STATEMENT_TIMEOUT, tcp_user_timeout=DATABASE_TCP_USER_TIMEOUT)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Time and language --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")  # the one the admin shows times in; data is stored in UTC
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- E-mail -------------------------------------------------------------------
# How notification e-mails are sent, e.g. smtp+tls://user:pw@smtp.example.com:587; consolemail:// prints them.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
# Seconds an SMTP connection may take: a mail server that hangs delays only its notification task.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="webhooks@localhost")  # sender of notification e-mails
# The port the web process listens on (config/gunicorn.py); command 1 passes it on, and SITE_URL's default follows it.
_port = env.int("PORT", default=8000)
# Base address of this installation, for links in e-mails and notifications (and of API_BASE_URL): behind a proxy,
# the public address. Command 1 exports it, so web, worker and beat agree. Default: http://127.0.0.1:PORT.
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{_port}")

# --- Celery -------------------------------------------------------------------
# e.g. redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//; filesystem:// keeps the messages as
# files in VAR_DIR/broker and needs no server (one machine only).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
# Set by pytest-xdist in test processes, never by an operator: each then gets a Redis database of its own.
if (_xdist := env.str("PYTEST_XDIST_WORKER", default="")).startswith("gw") and CELERY_BROKER_URL.startswith("redis://"):
    # Under `pytest -n`, each test process (and the workers its tests start) gets a Redis database of its
    # own, as it gets a test database of its own, so no worker takes another test's wake-ups.
    CELERY_BROKER_URL = f"{CELERY_BROKER_URL.rpartition('/')[0]}/{1 + int(_xdist[2:]) % 15}"
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL  # Celery reads the variable itself, before these settings
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The serverless default: processes exchange messages through files in ./var/broker, each written
    # atomically (config/broker.py).
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # kombu's default is ./control, in the checkout
        "store_processed": False,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)  # tasks run in-process: debugging only
CELERY_TASK_ROUTES = {"dispatcher.*": {"queue": "deliveries"}, "workflows.*": {"queue": "deliveries"}}
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- REST API -------------------------------------------------------------------
# Largest request body the records API reads (a bulk request of 100 records fits easily).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
# REST API calls per key and minute; then 429 with Retry-After.
API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", default=600)
# REST API calls per minute of all the keys of one organization together (then 429): more keys do not buy an
# organization more calls.
API_RATE_LIMIT_PER_ORGANIZATION = env.int("API_RATE_LIMIT_PER_ORGANIZATION", default=1200)
# Calls with an invalid API key per client address and minute; then 429 until the minute ends.
API_AUTH_FAILURES_PER_MINUTE = env.int("API_AUTH_FAILURES_PER_MINUTE", default=20)
# A POST retried with the same Idempotency-Key within this many hours gets the first answer again.
IDEMPOTENCY_KEY_HOURS = env.float("IDEMPOTENCY_KEY_HOURS", default=24.0)
# A configuration file (POST /config/) with more webhooks and workflow rules than this is imported by a
# worker as a job (202), so that no web thread waits for it; smaller ones are imported within the request.
CONFIG_IMPORT_SYNC_MAX_ENTRIES = env.int("CONFIG_IMPORT_SYNC_MAX_ENTRIES", default=200)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# --- Outbound webhooks --------------------------------------------------------------
# Ports a webhook URL may use (comma-separated; * allows any); the CRM products allow only 80 and 443.
_ports = env.list("WEBHOOK_ALLOWED_PORTS", default=["80", "443"])
WEBHOOK_ALLOW_ANY_PORT = "*" in _ports
WEBHOOK_ALLOWED_PORTS = [int(port) for port in _ports if port != "*"]
# Loopback targets are refused in production; tests and benchmarks turn this on for their local receiver.
WEBHOOK_ALLOW_LOOPBACK = env.bool("WEBHOOK_ALLOW_LOOPBACK", default=False)
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=5.0)  # seconds to connect to a receiver
# Seconds a receiver may go silent while answering; receivers are expected to answer within 10 seconds (seed 002).
WEBHOOK_READ_TIMEOUT = env.float("WEBHOOK_READ_TIMEOUT", default=10.0)
# Seconds one whole attempt may take at most, so a receiver trickling bytes cannot hold a worker.
WEBHOOK_TOTAL_TIMEOUT = env.float("WEBHOOK_TOTAL_TIMEOUT", default=30.0)
# Responses are read up to this many bytes; the rest is discarded and the attempt marked truncated.
WEBHOOK_MAX_RESPONSE_BYTES = env.int("WEBHOOK_MAX_RESPONSE_BYTES", default=1024 * 1024)
WEBHOOK_USER_AGENT = env.str("WEBHOOK_USER_AGENT", default="CRM-Webhooks/1.0")  # the User-Agent header sent

# --- Delivery engine ------------------------------------------------------------
# Delivery engine (docs/internals/delivery-engine.md): seconds between two runs of the pump (celery beat), which looks
# for due deliveries and sends drain tasks.
WEBHOOK_PUMP_INTERVAL = env.float("WEBHOOK_PUMP_INTERVAL", default=2.0)
WEBHOOK_PUMP_MAX_DRAINS = env.int("WEBHOOK_PUMP_MAX_DRAINS", default=8)  # most drain tasks one pump run sends
WEBHOOK_DRAIN_BATCH = env.int("WEBHOOK_DRAIN_BATCH", default=100)  # most deliveries a worker claims at once
WEBHOOK_DRAIN_SECONDS = env.float("WEBHOOK_DRAIN_SECONDS", default=60.0)  # seconds one drain task keeps claiming
# After its budget a drain goes on claiming this long while it waits for its requests: the task then ends
# within budget + tail + WEBHOOK_TOTAL_TIMEOUT (100 s), inside its 120 s soft time limit.
WEBHOOK_DRAIN_TAIL_SECONDS = env.float("WEBHOOK_DRAIN_TAIL_SECONDS", default=10.0)
# On PostgreSQL a worker's drain stays awake this long after the last delivery it claimed (within its budget),
# woken by LISTEN/NOTIFY when a commit makes deliveries due: the next delivery then costs no task start and no
# broker message (docs/internals/design/awake-drain-loop.md). 0: a drain ends as soon as nothing is due (the
# only way elsewhere, e.g. on SQLite, and with `DATABASE_POOLER=transaction`, where LISTEN cannot work and a
# drain never lingers). Default: 5, or 0 with `DATABASE_POOLER=transaction`.
WEBHOOK_DRAIN_LINGER_SECONDS = env.float("WEBHOOK_DRAIN_LINGER_SECONDS",
                                         default=0.0 if DATABASE_POOLER == "transaction" else 5.0)
# Seconds a claim lasts; after it, another worker may take the delivery over. Default: WEBHOOK_TOTAL_TIMEOUT + 30.
WEBHOOK_LEASE_SECONDS = env.int("WEBHOOK_LEASE_SECONDS", default=int(WEBHOOK_TOTAL_TIMEOUT) + 30)
# Requests in flight together per worker process (a thread each, waiting on the network, not the CPU):
# 100 keeps a 100 ms receiver at ~1,000 requests/s per process, more than two cores can record.
WEBHOOK_MAX_IN_FLIGHT = env.int("WEBHOOK_MAX_IN_FLIGHT", default=100)
# Requests in flight together per destination per process, so that a burst does not flood one receiver
# and one that hangs holds at most this many of a process's slots. 50 lets one destination that answers
# in 100 ms take ~500 deliveries/s per process (docs/internals/delivery-engine.md); a receiver that needs less
# gets a rate limit on its endpoint.
WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION = env.int("WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION", default=50)
# Isolation budgets (docs/operate/security.md; dispatcher/delivery/book.py). A destination starts with this many
# requests in flight at most per process; each fast answer adds one (up to the cap above), each request in
# flight for over a second halves it, down to WEBHOOK_SLOW_DESTINATION_SLOTS: a receiver that hangs or
# trickles holds 2 slots of a process, not 50, within a second or two.
WEBHOOK_DESTINATION_START_SLOTS = env.int("WEBHOOK_DESTINATION_START_SLOTS", default=10)
# The floor a slow destination's limit is halved down to (a request in flight for over a second is slow).
WEBHOOK_SLOW_DESTINATION_SLOTS = env.int("WEBHOOK_SLOW_DESTINATION_SLOTS", default=2)
# The part of a process's slots an organization over its fair share (the slots over the organizations with
# work, plus one) may not take: it is kept for the others, so another organization's delivery starts at
# once however busy the first one keeps the process (15 of 100 slots).
WEBHOOK_ORGANIZATION_RESERVE = env.float("WEBHOOK_ORGANIZATION_RESERVE", default=0.15)
# A drain loop that does not listen (SQLite, a pooler in transaction mode, a drain that does not linger) looks
# for newly due work this often while its last claim left some behind or requests are in flight; a listening
# loop only when no slot is free or a claim left an organization out. A listening loop is woken by NOTIFY, an
# organization left with due work claims its refill as its slots free, an idle worker is woken by the broker.
WEBHOOK_CLAIM_POLL_SECONDS = env.float("WEBHOOK_CLAIM_POLL_SECONDS", default=0.05)
# A worker stores finished attempts together, once the oldest has waited this long (or WEBHOOK_MAX_IN_FLIGHT
# of them are waiting). A killed worker process sends again at most what it had in flight plus what it had
# not stored yet (docs/internals/delivery-engine.md); 0 stores every attempt as it ends.
WEBHOOK_ATTEMPT_FLUSH_SECONDS = env.float("WEBHOOK_ATTEMPT_FLUSH_SECONDS", default=0.25)
# Response headers kept on an attempt, like the body excerpt: more is cut and the cut recorded.
WEBHOOK_MAX_STORED_HEADER_BYTES = env.int("WEBHOOK_MAX_STORED_HEADER_BYTES", default=64 * 1024)

# --- Response capture -----------------------------------------------------------
# A response capture (JSONPath or XPath over the answer) is stopped after this many seconds and recorded as
# a capture error: an expression that backtracks cannot hold a worker.
WEBHOOK_CAPTURE_TIMEOUT = env.float("WEBHOOK_CAPTURE_TIMEOUT", default=2.0)
# Captures run beside the drain loop, on this many capture workers per worker process (a thread, a child
# process of ~30 MB and, while busy, a database connection each): two let one organization's slow
# expressions take one while the other serves everyone else (docs/use/response-capture.md).
WEBHOOK_CAPTURE_WORKERS = env.int("WEBHOOK_CAPTURE_WORKERS", default=2)
# Captures of one organization running at once per worker process (more only on a worker that would be idle).
WEBHOOK_CAPTURE_PER_ORGANIZATION = env.int("WEBHOOK_CAPTURE_PER_ORGANIZATION", default=1)
# Captures of one organization waiting per worker process, each holding its answer (up to
# WEBHOOK_MAX_RESPONSE_BYTES); more are recorded as not run. 100 slow ones are 200 s of one worker's time.
WEBHOOK_CAPTURE_MAX_WAITING = env.int("WEBHOOK_CAPTURE_MAX_WAITING", default=100)
# What one attempt keeps of its captures (matches and the values written from them), like the body excerpt:
# `$..*` on a 1 MB answer would otherwise store 92 MB. The cut is recorded on the attempt.
WEBHOOK_MAX_CAPTURED_BYTES = env.int("WEBHOOK_MAX_CAPTURED_BYTES", default=64 * 1024)

# --- Retries, signing secrets, egress and log retention ------------------------------
# Retry delays are moved at random by up to this fraction of themselves (0.1: ±10 %), so that deliveries failed
# together by an outage come back spread out; 0 keeps them exact.
WEBHOOK_RETRY_JITTER = env.float("WEBHOOK_RETRY_JITTER", default=0.1)
# After "Rotate signing secret", deliveries are signed with the new and the previous secret for this many
# hours, so that receivers can switch over without rejecting a delivery (Standard Webhooks).
WEBHOOK_SECRET_GRACE_HOURS = env.float("WEBHOOK_SECRET_GRACE_HOURS", default=24.0)
# Optional HTTP proxy all webhook traffic goes through (CONNECT to the checked address), e.g.
# http://egress.internal:3128 or http://user:password@egress.internal:3128; receivers then see its IPs.
WEBHOOK_EGRESS_PROXY = env.str("WEBHOOK_EGRESS_PROXY", default="")
# Ended deliveries (and their attempts) older than this many days are purged, in batches, every hour.
WEBHOOK_LOG_RETENTION_DAYS = env.int("WEBHOOK_LOG_RETENTION_DAYS", default=90)

# --- Periodic tasks (celery beat) ----------------------------------------------------
# Every process that runs beat (each worker of the Procfile, `celery worker -B`, or any number of `celery beat`)
# claims each job's run in the database: each interval runs once whatever their number, and any one left goes
# on when a host dies (config/scheduler.py, docs/internals/design/no-single-scheduler.md). Intervals only.
CELERY_BEAT_SCHEDULER = "config.scheduler:ClaimingScheduler"
CELERY_BEAT_SCHEDULE = {
    "dispatcher-pump": {"task": "dispatcher.pump", "schedule": WEBHOOK_PUMP_INTERVAL},
    "dispatcher-purge-logs": {"task": "dispatcher.purge_logs", "schedule": 3600.0},
    "dispatcher-channel-expiry": {"task": "dispatcher.channels_expiry", "schedule": 300.0},
    "dispatcher-failure-digests": {"task": "dispatcher.failure_digests", "schedule": 300.0},
    # Seconds between two runs of the task that fires due time-based actions and date rules.
    "workflows-fire-due": {"task": "workflows.fire_due", "schedule": env.float("WORKFLOW_TICK_SECONDS", default=15.0)},
}

# --- Endpoint health -------------------------------------------------------------
# Endpoint health: a destination whose deliveries failed for good this many times in a row, over at
# least this many hours, is disabled (deliveries held, admins told). 0 failures turns this off.
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=10)
# Hours the run of failures must have lasted too (120: 5 days).
WEBHOOK_DISABLE_AFTER_HOURS = env.float("WEBHOOK_DISABLE_AFTER_HOURS", default=120.0)

# --- Event subscriptions (channels) -----------------------------------------------------
# Hours a channel created or renewed without expiry_time lives.
CHANNEL_DEFAULT_EXPIRY_HOURS = env.float("CHANNEL_DEFAULT_EXPIRY_HOURS", default=24.0)
CHANNEL_MAX_EXPIRY_DAYS = env.float("CHANNEL_MAX_EXPIRY_DAYS", default=7.0)  # longest a channel may be subscribed ahead
# Hours before a channel expires that its owner is e-mailed.
CHANNEL_EXPIRY_NOTICE_HOURS = env.float("CHANNEL_EXPIRY_NOTICE_HOURS", default=2.0)
CHANNEL_VERIFY_TIMEOUT = env.float("CHANNEL_VERIFY_TIMEOUT", default=5.0)  # seconds a verification may take
CHANNEL_MAX_PER_ORGANIZATION = env.int("CHANNEL_MAX_PER_ORGANIZATION", default=20)  # active channels per organization
CHANNEL_MAX_PER_EVENT = env.int("CHANNEL_MAX_PER_EVENT", default=5)  # active channels one record event notifies
# Base address of the records API in notifications' resource_uri and the renew link of expiry e-mails; empty:
# SITE_URL + /api/v1 (dispatcher/ops/links.py).
API_BASE_URL = env.str("API_BASE_URL", default="")

# --- Monitoring ------------------------------------------------------------------
# /metrics answers a request with "Authorization: Bearer <METRICS_TOKEN>", and a superuser, with the
# installation's view; staff who may view the delivery log get their organization's series. Empty: no token works.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Secrets at rest ---------------------------------------------------------------
# Fernet keys for secrets at rest (Basic auth passwords, custom parameters, signing secrets), comma-separated.
# The first key encrypts; the others still decrypt, which allows rotation. Default: the keys command 1 keeps in
# var/secrets-keys; with none (debug only), one derived from DJANGO_SECRET_KEY.
WEBHOOK_SECRETS_KEYS = [key for key in env.list("WEBHOOK_SECRETS_KEYS", default=_kept("secrets-keys").split())
                        if key]

# --- Logging --------------------------------------------------------------------
# LOG_FORMAT=json writes every log line as a JSON object: time, level, logger, message (an event's name, such
# as delivery.attempt, one per delivery attempt) and the event's fields (ids, outcome, duration); text, one
# line each with the fields as key=value. The events and their fields: docs/operate/monitoring.md.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
# The root log level: DEBUG, INFO, WARNING or ERROR.
LOGGING = logging_config(log_format=LOG_FORMAT, level=env.str("LOG_LEVEL", default="INFO"))
# Celery logs through the configuration above (LOG_FORMAT included) instead of replacing it with its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
