"""Dispatcher's Django admin, one module per area; importing them here registers them (Django's autodiscover
imports this package).

- ``webhooks``: webhooks, their preview page and test send; ``webhook_forms``: the webhook page's form and
  inlines (write-only secrets, entity and custom parameters, headers, response captures).
- ``retry_policies``: retry policies and the schedule each gives.
- ``deliveries``: the delivery log (filters, search, resend, the CSV export) and the attempts.
- ``usage``: daily usage and the usage chart.
- ``subscriptions``: event subscription channels and endpoint health.
- ``secrets``: signing secrets shown, rotated and expired, for webhooks and channels.
- ``paging``: capped counts and cheap filters, so the log pages cost the same at any size.
- ``read_only``: the base of the log pages (nobody adds or edits a log).
"""
from dispatcher.admin import deliveries, retry_policies, subscriptions, usage, webhooks

__all__ = ["deliveries", "retry_policies", "subscriptions", "usage", "webhooks"]
