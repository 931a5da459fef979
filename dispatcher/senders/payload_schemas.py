"""What this product sends, as the OpenAPI 3.1 ``webhooks`` of the served document: channel notifications and
verification requests (dispatcher/senders/channels.py) and a workflow webhook's JSON and JSON array bodies
(dispatcher/rendering/request.py), each with the Standard Webhooks headers (dispatcher/transport/signing.py).

Receivers generate types from them and validate what arrives, so the schemas are built from the constants of
the code that sends, and tests/docs/test_openapi_document.py checks real deliveries against them. The channel
notification is dispatcher/senders/notification_schema.py's, which the event catalogue specialises per event.
config/api.py adds them to the document (crm, below dispatcher, cannot).
"""
from typing import Any

from dispatcher.senders.channels import VERIFICATION_TYPE
from dispatcher.models import ContentType, Method
from dispatcher.senders.notification_schema import (
    channel_reference_schema, data_schema, notification_schema, owner_schema, token_schema,
)
from dispatcher.rendering.request import CONTENT_TYPE_HEADERS
from dispatcher.delivery.retry import GONE
from dispatcher.transport.result import RETRIED_STATUS_CODES
from dispatcher.transport.signing import (
    ID_HEADER, SECRET_PREFIX, SIGNATURE_HEADER, SIGNATURE_VERSION, TIMESTAMP_HEADER,
)

# msg_ and a UUID's 32 hex digits: a delivery's public id (Delivery.message_id), or a fresh one for a test
# send or a channel verification.
MESSAGE_ID_PATTERN = r"^msg_[0-9a-f]{32}$"
# One base64 HMAC-SHA256 (32 bytes: 43 characters and one "=") per signing secret, separated by spaces.
_ONE_SIGNATURE = SIGNATURE_VERSION + r",[A-Za-z0-9+/]{43}="
SIGNATURE_PATTERN = rf"^{_ONE_SIGNATURE}( {_ONE_SIGNATURE})*$"
JSON_MEDIA_TYPE = CONTENT_TYPE_HEADERS[ContentType.JSON].split(";")[0]

CHANNEL_NOTIFICATION = "ChannelNotification"
CHANNEL_NOTIFICATION_RECORD = "ChannelNotificationRecord"
CHANNEL_NOTIFICATION_OWNER = "ChannelNotificationOwner"
CHANNEL_REFERENCE = "ChannelReference"
CHANNEL_VERIFICATION = "ChannelVerification"
WORKFLOW_WEBHOOK_BODY = "WorkflowWebhookBody"
WORKFLOW_WEBHOOK_ARRAY_BODY = "WorkflowWebhookArrayBody"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def payload_schemas() -> dict[str, dict[str, Any]]:
    """The components/schemas of the bodies sent, by name (fresh dicts: the caller may change them)."""
    return {
        CHANNEL_NOTIFICATION: {
            "description": "One record event, for one channel that watches it (seed 002's shape).",
            **notification_schema(data=_ref(CHANNEL_NOTIFICATION_RECORD), channel=_ref(CHANNEL_REFERENCE)),
        },
        CHANNEL_NOTIFICATION_RECORD: data_schema(
            fields={}, other={"description": "The value of another field, under its API name."},
            owner=_ref(CHANNEL_NOTIFICATION_OWNER),
            description="The record's values by field API name, as stored (text, number, boolean, list or null, by "
                        "field type): after the change, or for a delete the last values; with the four system "
                        "values below, always present."),
        CHANNEL_NOTIFICATION_OWNER: owner_schema(),
        CHANNEL_REFERENCE: channel_reference_schema(),
        CHANNEL_VERIFICATION: {
            "type": "object",
            "description": "The challenge a notify URL must echo before a channel with verify: true is saved, "
                           "and before the notify URL of a verified channel (or with verify: true) is changed.",
            "required": ["type", "challenge", "channel"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": VERIFICATION_TYPE},
                "challenge": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$",
                              "description": "A random text to send back."},
                "channel": _ref(CHANNEL_REFERENCE),
                "token": token_schema(nullable=False, description="The channel's token; only when it has one."),
            },
        },
        WORKFLOW_WEBHOOK_BODY: {
            "type": "object",
            "description": "A JSON webhook's parameters: each entity parameter (a merge-field template, rendered as "
                           "text) and each custom parameter (a fixed text) under its name. A dot in a name nests "
                           "an object (customer.name gives {\"customer\": {\"name\": …}}); an entity parameter "
                           "of a related module is an array with one item per related record (of objects when "
                           "its name has a dot). The names are the webhook's own: any name may occur.",
            "additionalProperties": _ref("WorkflowWebhookValue"),
        },
        "WorkflowWebhookValue": {
            "description": "A parameter's value: text, an object of nested parameters, or a related module's "
                           "values (one item per related record).",
            "anyOf": [
                {"type": "string"},
                _ref(WORKFLOW_WEBHOOK_BODY),
                {"type": "array", "items": {"anyOf": [{"type": "string"}, _ref(WORKFLOW_WEBHOOK_BODY)]}},
            ],
        },
        WORKFLOW_WEBHOOK_ARRAY_BODY: {
            "type": "array",
            "description": "A JSON array webhook's body: the parameters' object as the one item of an array.",
            "items": _ref(WORKFLOW_WEBHOOK_BODY),
            "minItems": 1,
            "maxItems": 1,
        },
    }


def signature_headers() -> list[dict[str, Any]]:
    """The headers every request sent carries (dispatcher/rendering/request.py: request_sign)."""
    return [
        {"in": "header", "name": ID_HEADER, "required": True,
         "description": "The message id: a delivery's id, the same on each of its retries and resends (use it to "
                        "ignore a message you have already handled); signed.",
         "schema": {"type": "string", "pattern": MESSAGE_ID_PATTERN}},
        {"in": "header", "name": TIMESTAMP_HEADER, "required": True,
         "description": "When this attempt was signed, in seconds since 1970 (UTC); each retry is signed afresh. "
                        "Refuse one far from your clock (Standard Webhooks libraries allow five minutes).",
         "schema": {"type": "string", "pattern": "^[0-9]+$"}},
        {"in": "header", "name": SIGNATURE_HEADER, "required": True,
         "description": f"Standard Webhooks signatures, separated by spaces: `{SIGNATURE_VERSION},` and the base64 "
                        f"HMAC-SHA256 of `<{ID_HEADER}>.<{TIMESTAMP_HEADER}>.<body>`, keyed with the signing "
                        f"secret base64-decoded (without `{SECRET_PREFIX}`). One per secret: two while a rotated "
                        "secret's predecessor is still valid. Accept the request when any of them matches.",
         "schema": {"type": "string", "pattern": SIGNATURE_PATTERN}},
        {"in": "header", "name": "User-Agent", "required": True,
         "description": "The WEBHOOK_USER_AGENT setting.", "schema": {"type": "string", "minLength": 1}},
    ]


def _delivery_responses() -> dict[str, Any]:
    retried = ", ".join(str(code) for code in sorted(RETRIED_STATUS_CODES))
    return {
        "2XX": {"description": "Delivered: logged as a success (a webhook with response capture reads the body)."},
        "default": {"description": f"Not delivered. Retried under the retry policy (a Retry-After is honoured): "
                                   f"no answer (connection error, timeout, DNS or TLS failure), {retried} and "
                                   f"every 5xx. Final: {GONE} Gone, which also disables the destination, redirects "
                                   "(not followed) and every other status."},
    }


def _operation(summary: str, description: str, schema: str, body_description: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "parameters": signature_headers(),
        "requestBody": {"required": True, "description": body_description,
                        "content": {JSON_MEDIA_TYPE: {"schema": _ref(schema)}}},
        "responses": _delivery_responses(),
    }


_WORKFLOW_WEBHOOK = (
    "Sent when a workflow rule's action calls a webhook whose content type is {content_type}, for a record of "
    "the rule's module; a resend, and a test send (once, never retried), send the same. The body below is for a webhook without a "
    "user-defined body. With one, the body is that template rendered, free-form (this schema does not apply), "
    "and the parameters go in the query string, as they do for a GET, which has no body. XML and form-encoded "
    "webhooks send the same parameters in their encoding. Besides the headers listed: the webhook's own "
    "headers and, by its authentication, an Authorization header (Basic, Bearer, or an OAuth 2.0 token)."
)


def payload_webhooks() -> dict[str, dict[str, Any]]:
    """The OpenAPI 3.1 ``webhooks`` object: each request this product sends, by name."""
    workflow_methods = [method.lower() for method in Method.values if method != Method.GET]
    return {
        "channelNotification": {"post": _operation(
            "A record event, for a channel",
            "Sent to a channel's notify URL when a record of a watched module is created, edited or deleted "
            "(one per channel, and per record in the order of its events), until the channel expires.",
            CHANNEL_NOTIFICATION, "The event, the channel and the record's values."),
        },
        "channelVerification": {"post": {
            **_operation(
                "Verify a channel's notify URL",
                "Sent once, with CHANNEL_VERIFY_TIMEOUT seconds to answer, when a channel is subscribed with "
                "verify: true, and when the notify URL of a verified channel (or with verify: true) is changed.",
                CHANNEL_VERIFICATION, "The challenge to echo."),
            "responses": {
                "2XX": {"description": "Verified when the body is the challenge (surrounding white space is "
                                       "ignored) or a JSON object whose challenge member is it.",
                        "content": {"text/plain": {"schema": {"type": "string"}},
                                    JSON_MEDIA_TYPE: {"schema": {"type": "object", "required": ["challenge"],
                                                                 "properties": {"challenge": {"type": "string"}}}}}},
                "default": {"description": "Not verified (so is a 2xx without the challenge, or no answer in "
                                           "time): the channel is not saved, or its notify URL not changed, and "
                                           "the API answers 400 saying why."},
            },
        }},
        "workflowWebhookJson": {method: _operation(
            "A workflow webhook call (JSON)", _WORKFLOW_WEBHOOK.format(content_type=ContentType.JSON.label),
            WORKFLOW_WEBHOOK_BODY, "The webhook's parameters, as an object.") for method in workflow_methods},
        "workflowWebhookJsonArray": {method: _operation(
            "A workflow webhook call (JSON array)", _WORKFLOW_WEBHOOK.format(content_type=ContentType.JSONARRAY.label),
            WORKFLOW_WEBHOOK_ARRAY_BODY, "The webhook's parameters, as the one object of an array.")
            for method in workflow_methods},
    }
