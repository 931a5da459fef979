"""Webhooks over the REST API, read-only: what integrators may see of one (never a secret); they are
configured in the admin or with the configuration file."""
from typing import Any

from ninja import Query, Router, Schema

from crm.api.auth import ApiRequest, key_auth
from crm.api.envelopes import Answer, Page
from crm.api.errors import COMMON_ERRORS
from crm.api.lookup import owned_or_404
from crm.api.pagination import Paging, page
from crm.models import ApiScope
from dispatcher import selectors
from dispatcher.models import Webhook

webhooks_router = Router(tags=["webhooks"])
CONFIG = key_auth(ApiScope.CONFIG)


class WebhookOut(Schema):
    id: int
    name: str
    module: str
    url: str
    method: str
    content_type: str
    active: bool
    auth_type: str
    retry_policy: str | None
    created_time: str
    modified_time: str


def webhook_data(webhook: Webhook) -> dict[str, Any]:
    """What integrators may see of a webhook: never a secret (the URL's query is kept: it is the admin's)."""
    return {"id": webhook.pk, "name": webhook.name, "module": webhook.module.api_name, "url": webhook.url,
            "method": webhook.method, "content_type": webhook.content_type, "active": webhook.is_active,
            "auth_type": webhook.auth_type, "retry_policy": webhook.retry_policy.code if webhook.retry_policy else None,
            "created_time": webhook.created_at.isoformat(), "modified_time": webhook.modified_at.isoformat()}


@webhooks_router.get("/", response={200: Page[WebhookOut], **COMMON_ERRORS}, auth=CONFIG, summary="List webhooks")
def webhooks_list(request: ApiRequest, paging: Query[Paging]):
    return page(selectors.webhooks_list(organization=request.auth.organization_id), cursor=paging.cursor,
                limit=paging.limit, serialize=webhook_data)


@webhooks_router.get("/{int:pk}/", response={200: Answer[WebhookOut], **COMMON_ERRORS}, auth=CONFIG,
                     summary="Read a webhook")
def webhook_read(request: ApiRequest, pk: int):
    webhook = owned_or_404(Webhook.objects.select_related("module", "retry_policy"), request.auth.organization_id,
                           pk=pk, not_found=f"There is no webhook with id {pk}.")
    return {"data": webhook_data(webhook)}
