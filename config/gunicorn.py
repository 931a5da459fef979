"""gunicorn settings of the web process (the Procfile's `web`); environment variables as in the README.

- gthread workers: each connection is read by a thread of its own, and a thread waits for a client's first
  bytes only `keepalive` seconds, so a few slow or silent clients (slowloris) hold a few threads, not the
  site. Beyond WEB_CONCURRENCY × WEB_THREADS such connections, put a buffering proxy in front (README,
  "Scaling out").
- The access log has no query string and no referrer: `?zapikey=…` is an API key.
"""
import os

bind = f"{os.environ.get('BIND', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 30  # a request still running after this is killed with its worker
graceful_timeout = 30
keepalive = 5
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'
