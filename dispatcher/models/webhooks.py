"""Webhook definitions: where to send, how to authenticate, and what to send (parameters and body)."""
import base64
import datetime
import secrets

from django.core.validators import MaxLengthValidator
from django.db import models

from crm.formats import DATE_FORMAT_CHOICES, DATETIME_FORMAT_CHOICES, validate_time_zone
from crm.models import Module, Organization
from dispatcher.crypto import EncryptedTextField
from dispatcher.models.fields import ReceiverURLField
from dispatcher.transport.sending import CLIENT_AUTH_BASIC, CLIENT_AUTH_BODY
from dispatcher.transport.addresses import (
    validate_header_name, validate_header_value, validate_parameter_name, validate_webhook_name,
)

NAME_MAX_LENGTH = 100
DESCRIPTION_MAX_LENGTH = 200
URL_MAX_LENGTH = 200  # seed 003: "URL om te informeren", 200 characters
BODY_MAX_LENGTH = 10_000  # seed 003: user-defined formats up to 10,000 characters
PARAMETER_NAME_MAX_LENGTH = 100


class Method(models.TextChoices):
    GET = "GET", "GET"
    POST = "POST", "POST"
    PUT = "PUT", "PUT"


class ContentType(models.TextChoices):
    JSON = "JSON", "JSON"
    JSONARRAY = "JSONARRAY", "JSON array"
    XML = "XML", "XML"
    FORM = "FORM", "Form (x-www-form-urlencoded)"


class CaptureType(models.TextChoices):
    JSONPATH = "JSONPATH", "JSONPath (JSON responses)"
    XPATH = "XPATH", "XPath (XML responses)"


class AuthType(models.TextChoices):
    NONE = "none", "No authentication"
    BASIC = "basic", "Basic authentication"
    BEARER = "bearer", "Bearer token"
    OAUTH2 = "oauth2", "OAuth 2.0 client credentials"


class OAuthClientAuth(models.TextChoices):
    BASIC = CLIENT_AUTH_BASIC, "Client id and secret as Basic authentication (client_secret_basic)"
    BODY = CLIENT_AUTH_BODY, "Client id and secret in the form body (client_secret_post)"


HEADERS_MAX = 20


def signing_secret_generate() -> str:
    """A Standard Webhooks secret: 'whsec_' and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class SignsDeliveries:
    """A sender with a signing secret, and for a grace period after a rotation the previous one too: both
    sign every delivery until then (Standard Webhooks allows several signatures), so receivers switch over
    without rejecting one. Webhooks and channels."""

    signing_secret: str
    previous_signing_secret: str
    previous_secret_expires_at: "datetime.datetime | None"

    def signing_secrets(self, now: datetime.datetime) -> list[str]:
        """The secrets to sign with now: the current one first, then the previous one while it is valid."""
        if self.previous_signing_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            return [self.signing_secret, self.previous_signing_secret]
        return [self.signing_secret]


def previous_secret_fields() -> tuple[models.Field, models.Field]:
    return (
        EncryptedTextField("previous signing secret", blank=True, editable=False,
                           help_text="The secret before the last rotation; deliveries are signed with it too "
                           "until it expires."),
        models.DateTimeField("previous secret expires", null=True, blank=True, editable=False,
                             help_text="When the previous signing secret stops signing deliveries."),
    )


class Webhook(SignsDeliveries, models.Model):
    """An outbound HTTP call an admin configures once and workflow rules trigger for records of one module."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhooks", verbose_name="organization",
        help_text="The organization whose records this webhook sends.",
    )
    module = models.ForeignKey(
        Module, on_delete=models.PROTECT, related_name="webhooks", verbose_name="module",
        help_text="Records of this module are sent; Call logs and Notes cannot have webhooks.",
    )
    name = models.CharField(
        "name", max_length=NAME_MAX_LENGTH, validators=[validate_webhook_name],
        help_text="Letters, digits, spaces, hyphens and underscores; at most 100 characters.",
    )
    description = models.CharField("description", max_length=DESCRIPTION_MAX_LENGTH, blank=True,
                                   help_text="At most 200 characters.")
    url = ReceiverURLField(
        "URL to notify", max_length=URL_MAX_LENGTH,
        help_text="http or https, at most 200 characters, ports 80 and 443 only; no user name or password in it.",
    )
    method = models.CharField("method", max_length=4, choices=Method.choices, default=Method.POST,
                              help_text="GET sends every parameter in the query string.")
    content_type = models.CharField(
        "content type", max_length=10, choices=ContentType.choices, default=ContentType.JSON,
        help_text="How parameters are encoded in the body of a POST or PUT.",
    )
    auth_type = models.CharField("authorization", max_length=10, choices=AuthType.choices, default=AuthType.NONE,
                                 help_text=("How the receiver authenticates the request: none, Basic, bearer token, "
                                            "OAuth 2.0 client credentials."))
    auth_username = models.CharField("user name", max_length=200, blank=True,
                                     help_text="For Basic authentication.")
    auth_password = EncryptedTextField(
        "password", blank=True, help_text="For Basic authentication. Stored encrypted and never shown again."
    )
    auth_token = EncryptedTextField(
        "bearer token", blank=True,
        help_text="Sent as the header “Authorization: Bearer” followed by this token. Stored encrypted and never "
        "shown again.")
    oauth_token_url = ReceiverURLField(
        "token URL", max_length=URL_MAX_LENGTH, blank=True,
        help_text="OAuth 2.0 token endpoint of the receiver (client credentials grant); the same address rules as "
        "the webhook URL apply.")
    oauth_client_id = models.CharField("client id", max_length=200, blank=True, help_text="OAuth 2.0 client id.")
    oauth_client_secret = EncryptedTextField(
        "client secret", blank=True, help_text="OAuth 2.0 client secret. Stored encrypted and never shown again.")
    oauth_scope = models.CharField("scope", max_length=500, blank=True,
                                   help_text="Space-separated scopes to ask for; empty asks for none.")
    oauth_client_auth = models.CharField(
        "client authentication", max_length=10, choices=OAuthClientAuth.choices, default=OAuthClientAuth.BASIC,
        help_text="How the client id and secret are sent to the token URL (RFC 6749, section 2.3.1).")
    tls_client_certificate = models.TextField(
        "client certificate (PEM)", blank=True,
        help_text="For receivers that require mutual TLS: the certificate (and any intermediates) in PEM.")
    tls_client_key = EncryptedTextField(
        "client key (PEM)", blank=True,
        help_text="The certificate's private key in PEM, unencrypted. Stored encrypted and never shown again.")
    tls_ca_bundle = models.TextField(
        "receiver CA bundle (PEM)", blank=True,
        help_text="Trust only these CA certificates for the receiver (a private CA); empty uses the system's.")
    body = models.TextField(
        "user-defined body", blank=True,
        validators=[MaxLengthValidator(BODY_MAX_LENGTH, "The body may have at most %(limit_value)d characters (it has %(show_value)d).")],
        help_text="Optional JSON or XML template for POST and PUT, at most 10,000 characters, with merge fields "
        "such as ${Deals.Amount}. When set, entity and custom parameters go in the query string.",
    )
    date_format = models.CharField(
        "date format", max_length=32, choices=DATE_FORMAT_CHOICES, blank=True,
        help_text="Format of date values; empty uses the organization's format.",
    )
    datetime_format = models.CharField(
        "date/time format", max_length=32, choices=DATETIME_FORMAT_CHOICES, blank=True,
        help_text="Format of date/time values; empty uses the organization's format.",
    )
    time_zone = models.CharField(
        "time zone", max_length=64, blank=True, validators=[validate_time_zone],
        help_text="Time zone of date/time values; empty uses the organization's time zone.",
    )
    is_active = models.BooleanField("active", default=True, help_text="Inactive webhooks are not sent.")
    retry_policy = models.ForeignKey(
        "dispatcher.RetryPolicy", on_delete=models.PROTECT, null=True, blank=True, related_name="webhooks",
        verbose_name="retry policy", help_text="When failed calls are retried; empty uses the Zoho profile "
        "(one retry after 15 minutes).",
    )
    capture_response = models.BooleanField(
        "capture the response", default=False,
        help_text="Write values from the receiver's answer into the record (see the captures below).",
    )
    capture_type = models.CharField("response type", max_length=10, choices=CaptureType.choices,
                                    default=CaptureType.JSONPATH,
                                    help_text=("How the receiver's answer is read for response capture: JSONPath or "
                                               "XPath."))
    capture_namespaces = models.TextField(
        "XML namespaces", blank=True,
        help_text="For XPath: one prefix=URI per line, e.g. z=http://www.zoho.com/crm, used as z:status.",
    )
    signing_secret = EncryptedTextField(
        "signing secret", default=signing_secret_generate, editable=False,
        help_text="Receivers verify the webhook-signature header with it (Standard Webhooks).",
    )
    previous_signing_secret, previous_secret_expires_at = previous_secret_fields()
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When the webhook was made.")
    modified_at = models.DateTimeField("modified", auto_now=True,
                                       help_text=("Changed on every save (and when a parameter, header or capture "
                                                  "changes); workers reload it then."))

    class Meta:
        verbose_name = "webhook"
        ordering = ["organization", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="webhook_unique_name_per_org"),
        ]

    @property
    def destination_url(self) -> str:
        """Where its deliveries go (a channel's is its notify URL)."""
        return self.url

    def __str__(self) -> str:
        return self.name

    @property
    def effective_date_format(self) -> str:
        return self.date_format or self.organization.date_format

    @property
    def effective_datetime_format(self) -> str:
        return self.datetime_format or self.organization.datetime_format

    @property
    def effective_time_zone(self) -> str:
        return self.time_zone or self.organization.time_zone


class EntityParameter(models.Model):
    """A request parameter whose value comes from the record: text with merge fields."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="entity_parameters",
                                verbose_name="webhook", help_text="The webhook that sends this parameter.")
    name = models.CharField(
        "parameter name", max_length=PARAMETER_NAME_MAX_LENGTH, validators=[validate_parameter_name],
        help_text="Dots nest objects in JSON and XML (customer.name); a related module's fields become an array.",
    )
    value = models.CharField("value", max_length=3000, help_text=("Merge fields such as ${Deals.Deal Name}, with text "
                                                                  "around them if needed."))
    position = models.PositiveIntegerField("position", default=0, help_text="Order in the request.")

    class Meta:
        verbose_name = "entity parameter"
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "name"], name="entity_parameter_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class CustomParameter(models.Model):
    """A literal request parameter, typically an API token: stored encrypted, masked wherever it is shown."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="custom_parameters",
                                verbose_name="webhook", help_text="The webhook that sends this parameter.")
    name = models.CharField(
        "parameter name", max_length=PARAMETER_NAME_MAX_LENGTH, validators=[validate_parameter_name],
        help_text="Dots nest objects in JSON and XML bodies.",
    )
    value = EncryptedTextField("value", help_text="Sent as is. Stored encrypted; leave empty to keep the saved value.")
    position = models.PositiveIntegerField("position", default=0, help_text="Order in the request.")

    class Meta:
        verbose_name = "custom parameter"
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "name"], name="custom_parameter_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class WebhookHeader(models.Model):
    """A request header of the receiver's choosing: literal text or merge fields; secret values (API keys)
    are literal, stored encrypted and masked wherever they are shown, like custom parameters."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="headers", verbose_name="webhook",
                                help_text="The webhook that sends this header.")
    name = models.CharField("header", max_length=100, validators=[validate_header_name],
                            help_text="E.g. X-Api-Key. Not Host, Content-Length, hop-by-hop or webhook-* headers.")
    value = EncryptedTextField(
        "value", validators=[validate_header_value, MaxLengthValidator(2000)],
        help_text="Text, with merge fields such as ${Deals.Deal Name} unless secret; at most 2,000 characters.")
    is_secret = models.BooleanField(
        "secret", default=False,
        help_text="Sent as typed (no merge fields), masked wherever it is shown, and kept only for this URL's host.")
    position = models.PositiveIntegerField("position", default=0, help_text="Order in which headers are sent.")

    class Meta:
        verbose_name = "header"
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["webhook", "name"], name="webhook_header_unique_name")]

    def __str__(self) -> str:
        return self.name
