"""Webhook configuration as JSON, to keep in version control and move between environments: the file as
written, its format and version, each retry policy and webhook as an entry (secrets only when asked for).
An import compares an entry's export before and after it, to tell what changed. The format is documented
in docs/operate/config-files.md."""
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crm.models import Organization
from dispatcher.models import AuthType, RetryPolicy, Webhook
from dispatcher.senders.webhook_rows import Header, Parameter

FORMAT = "crm-webhooks"
VERSION = 1
SECTIONS = ("retry_policies", "webhooks", "workflow_rules")


def config_export(*, organization: Organization | None = None, include_secrets: bool = False) -> dict[str, Any]:
    webhooks = Webhook.objects.select_related("organization", "module", "retry_policy").prefetch_related(
        "entity_parameters", "custom_parameters", "headers", "captures__field"
    ).order_by("organization__name", "name")
    if organization is not None:
        webhooks = webhooks.filter(organization=organization)
    return {
        "format": FORMAT, "version": VERSION,
        "retry_policies": [retry_policy_export(policy) for policy in RetryPolicy.objects.order_by("code")],
        "webhooks": [webhook_export(w, include_secrets) for w in webhooks],
    }


def retry_policy_export(policy: RetryPolicy) -> dict[str, Any]:
    """Policies are shared by every organization; all of them go into every file, so a webhook's policy
    always travels with it."""
    return {"code": policy.code, "name": policy.name, "delays": policy.delays,
            "max_retry_after": policy.max_retry_after, "failure_emails": policy.failure_emails}


@dataclass
class WebhookRowsOf:
    """The rows a webhook owns, as stored or as an import would store them (captures: (when, expression,
    field API name) in the order the database keeps them)."""

    entity: list[Parameter]
    custom: list[Parameter]
    headers: list[Header]
    captures: list[tuple[str, str, str]]

    @classmethod
    def stored(cls, webhook: Webhook) -> "WebhookRowsOf":
        return cls([Parameter(p.name, p.value) for p in webhook.entity_parameters.all()],
                   [Parameter(p.name, p.value) for p in webhook.custom_parameters.all()],
                   [Header(h.name, h.value, h.is_secret) for h in webhook.headers.all()],
                   [(c.when, c.expression, c.field.api_name) for c in webhook.captures.all()])


def webhook_export(webhook: Webhook, include_secrets: bool, rows: WebhookRowsOf | None = None) -> dict[str, Any]:
    """The webhook's entry of the file; rows default to the stored ones (an import passes what it would store,
    to see whether anything changes without writing)."""
    rows = rows or WebhookRowsOf.stored(webhook)
    secret = (lambda value: value) if include_secrets else (lambda value: None)
    data: dict[str, Any] = {
        "organization": webhook.organization.name,
        "module": webhook.module.api_name,
        "name": webhook.name,
        "description": webhook.description,
        "url": webhook.url,
        "method": webhook.method,
        "content_type": webhook.content_type,
        "active": webhook.is_active,
        "body": webhook.body,
        "date_format": webhook.date_format,
        "datetime_format": webhook.datetime_format,
        "time_zone": webhook.time_zone,
        "retry_policy": webhook.retry_policy.code if webhook.retry_policy is not None else None,
        "auth": _auth_export(webhook, secret),
        "entity_parameters": [{"name": p.name, "value": p.value} for p in rows.entity],
        "custom_parameters": [{"name": p.name, "value": secret(p.value)} for p in rows.custom],
        "headers": [{"name": h.name, "value": secret(h.value) if h.secret else h.value, "secret": h.secret}
                    for h in rows.headers],
        "capture": {
            "enabled": webhook.capture_response, "type": webhook.capture_type,
            "namespaces": webhook.capture_namespaces,
            "captures": [{"when": when, "expression": expression, "field": name}
                         for when, expression, name in rows.captures],
        },
    }
    if webhook.tls_client_certificate or webhook.tls_ca_bundle:
        data["tls"] = {"client_certificate": webhook.tls_client_certificate,
                       "client_key": secret(webhook.tls_client_key) if webhook.tls_client_key else None,
                       "ca_bundle": webhook.tls_ca_bundle}
    if include_secrets:
        data["signing_secret"] = webhook.signing_secret
        if webhook.previous_signing_secret and webhook.previous_secret_expires_at:
            data["previous_signing_secret"] = {"secret": webhook.previous_signing_secret,
                                               "expires": webhook.previous_secret_expires_at.isoformat()}
    return data


def _auth_export(webhook: Webhook, secret: Callable[[str], str | None]) -> dict[str, Any]:
    """type, username and password always (as before); the keys of bearer and OAuth 2.0 when used."""
    auth: dict[str, Any] = {"type": webhook.auth_type, "username": webhook.auth_username,
                            "password": secret(webhook.auth_password) if webhook.auth_type == AuthType.BASIC else None}
    if webhook.auth_type == AuthType.BEARER:
        auth["token"] = secret(webhook.auth_token)
    elif webhook.auth_type == AuthType.OAUTH2:
        auth |= {"token_url": webhook.oauth_token_url, "client_id": webhook.oauth_client_id,
                 "client_secret": secret(webhook.oauth_client_secret), "scope": webhook.oauth_scope,
                 "client_auth": webhook.oauth_client_auth}
    return auth
