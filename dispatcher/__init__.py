"""The webhook engine: what is sent, to whom, how, and what came back.

Packages, top to bottom; each imports only those below it (.importlinter's dispatcher-layers contract):

- ``admin``, ``api``, ``management``, ``tasks``, ``signals``, ``checks``: entry points, thin (Django admin,
  REST API, CLI, Celery tasks, signal wiring, system checks).
- ``selectors``: reads for those entry points (the delivery log, webhooks, channels).
- ``config_io``: configuration in and out (config files, the demo data).
- ``senders``: what to send where (webhooks, channels and their notifications, the event catalogue,
  payload schemas, signing-secret rotation).
- ``delivery``: the engine that sends (enqueue, claim, attempt, store, retry, endpoint health).
- ``capture``: values taken from a receiver's answer into the record and the log (JSONPath, XPath, sandboxed).
- ``ops``: what the installation counts and tells (daily quota, usage, metrics, /healthz, logs, e-mails), and
  the periodic jobs' runs, claimed by the schedulers.
- ``rendering``: a webhook's request for a record (merge fields, templates, encodings, XML).
- ``models``: the tables.
- ``transport``: how a request reaches a receiver (guarded client, address rules, results, auth, signing).
- ``crypto``: secrets at rest.
"""
