import secrets

from django.db import models

from crm.models import CrmUser, Organization
from dispatcher.crypto import EncryptedTextField
from dispatcher.models.fields import ReceiverURLField
from dispatcher.models.webhooks import (
    URL_MAX_LENGTH, SignsDeliveries, previous_secret_fields, signing_secret_generate,
)

TOKEN_MAX_LENGTH = 50  # as Zoho's notification token


def channel_id_generate() -> str:
    return "ch_" + secrets.token_hex(8)


class ChannelQuerySet(models.QuerySet):
    def receiving(self, now) -> "ChannelQuerySet":
        return self.filter(is_active=True, expires_at__gt=now)


class Channel(SignsDeliveries, models.Model):
    """An event subscription made through the API: which record events to send where, until when.

    Unlike a webhook, nothing is configured per field: the notification has a fixed shape (seed 002),
    with the record's values as ``data``.
    """

    public_id = models.CharField("channel id", max_length=40, default=channel_id_generate, editable=False,
                                 help_text="Chosen by the subscriber or generated; sent as channel.id.")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="channels",
                                     help_text="The organization whose record events it receives.")
    owner = models.ForeignKey(CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="channels",
                              help_text="The user of the API key that created it; told before it expires.")
    events = models.JSONField("events", default=list,
                              help_text="Event names such as Leads.create, Deals.edit, Deals.Stage.change.")
    fields = models.JSONField(
        "field filter", default=list, blank=True,
        help_text="API names of fields; when set, edits notify only if one of these fields changed.")
    notify_url = ReceiverURLField("notify URL", max_length=URL_MAX_LENGTH,
                                  help_text=("Where the notifications are sent (through the guarded client, like a "
                                             "webhook's URL)."))
    token = EncryptedTextField("token", blank=True,
                               help_text="Echoed in every notification so the receiver can recognise it.")
    signing_secret = EncryptedTextField("signing secret", default=signing_secret_generate, editable=False,
                                        help_text="Receivers verify the webhook-signature header with it.")
    previous_signing_secret, previous_secret_expires_at = previous_secret_fields()
    expires_at = models.DateTimeField("expires", help_text="After this it receives nothing; renew it through the API.")
    verified_at = models.DateTimeField("verified", null=True, blank=True,
                                       help_text="When the notify URL echoed the challenge, if asked to.")
    is_active = models.BooleanField("active", default=True,
                                    help_text=("Inactive channels receive nothing; their pending deliveries are "
                                               "cancelled."))
    expiry_notice_sent_at = models.DateTimeField("expiry notice sent", null=True, blank=True, editable=False,
                                                 help_text="When its owner was told it expires soon.")
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When it was subscribed.")
    modified_at = models.DateTimeField("modified", auto_now=True, help_text="Changed on every save.")

    objects = ChannelQuerySet.as_manager()

    class Meta:
        verbose_name = "event subscription channel"
        ordering = ["-id"]
        indexes = [models.Index(fields=["organization", "expires_at"], name="channel_org_expiry")]
        constraints = [models.UniqueConstraint(fields=["organization", "public_id"], name="channel_unique_id")]

    @property
    def destination_url(self) -> str:
        """Where its deliveries go (a webhook's is its URL)."""
        return self.notify_url

    def __str__(self) -> str:
        return self.public_id
