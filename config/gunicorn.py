"""gunicorn settings of the web process (the Procfile's `web`); environment variables as in
docs/operate/configuration.md.

- gthread workers, WEB_CONCURRENCY processes of WEB_THREADS threads. What a slow client costs (gunicorn 27,
  docs/operate/security.md, "Limits"):
  - a connection that sends nothing holds a thread for gunicorn's first-bytes wait (5 s, fixed), then waits
    in the worker's poller without one and is closed after `keepalive` seconds;
  - a kept-alive connection between two requests holds no thread, and is closed after `keepalive` seconds;
  - a client trickling its request line, headers or body holds its thread until it is done or goes away.
    gunicorn has no setting for a header or body read deadline: `timeout` restarts a worker whose main loop
    is stuck (under gthread, not a slow request), and the limit_request_* settings bound sizes, not time.
  So WEB_CONCURRENCY × WEB_THREADS trickling clients stall the site for as long as they trickle, and fewer
  leave it answering (tests/test_web_slow_clients.py). On the internet, a buffering proxy in front reads whole
  requests with deadlines (docs/operate/deployment.md).
- The access log has no query string and no referrer: `?zapikey=…` is an API key.
"""
import os

# The address the web process listens on: BIND (0.0.0.0: every interface, e.g. in a container), and PORT.
bind = f"{os.environ.get('BIND', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))  # web processes
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))  # threads per web process: requests it answers at once
timeout = 30  # a worker whose main loop stops answering the arbiter this long is restarted
graceful_timeout = 30
keepalive = 5  # seconds a connection may wait, without a thread, for its (next) request
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'
