"""REST API of the dispatcher, as django-ninja routers, one per file: channels (event subscriptions),
event_types (the catalogue channels subscribe to), deliveries (the log, one delivery with its attempts,
resend, recover, usage per day) and webhooks (read-only). config/api.py mounts the four routers re-exported
here.

Views stay thin: dispatcher.senders.channels, dispatcher.delivery and dispatcher.selectors do the work; what an
auditor sees here is what the admin shows (requests and answers masked when they were stored). What every
router of every app shares (envelopes, errors, keys, paging, this organization's object or 404) is crm.api.
"""
from dispatcher.api.channels import channels_router
from dispatcher.api.deliveries import deliveries_router
from dispatcher.api.event_types import event_types_router
from dispatcher.api.webhooks import webhooks_router

__all__ = ["channels_router", "deliveries_router", "event_types_router", "webhooks_router"]
