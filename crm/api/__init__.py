"""What every REST API router shares (records here, channels and deliveries in dispatcher, rules and
configuration in workflows): errors as RFC 9457 problem documents, the hardened JSON parser, API-key
authentication with scopes and the per-key throttle, cursor pagination, the answers' envelopes
(``Answer[T]``, ``Page[T]``), this organization's object or 404 (``owned_or_404``) and Idempotency-Key.

The API itself (one django-ninja NinjaAPI with every router, its OpenAPI document and docs page) is
assembled in config/api.py.
"""
