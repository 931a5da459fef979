"""Rotating a signing secret without downtime, for webhooks and channels alike (models.SignsDeliveries).

After a rotation every delivery carries two signatures, the new secret's and the previous one's, for
WEBHOOK_SECRET_GRACE_HOURS (Standard Webhooks allows several in one header): a receiver that still knows
only the old secret verifies, and so does one that already has the new one. Then only the new one signs.
"""
import datetime

from django.conf import settings
from django.utils import timezone

from dispatcher.models import Channel, Webhook, signing_secret_generate

ROTATION_FIELDS = ["signing_secret", "previous_signing_secret", "previous_secret_expires_at", "modified_at"]


def signing_secret_rotate(*, sender: Webhook | Channel, now: datetime.datetime | None = None) -> datetime.datetime | None:
    """A new secret; the current one keeps signing until the returned time (None: no grace period set).
    Rotating again within the grace period drops the oldest secret: two sign at most."""
    now = now or timezone.now()
    grace = settings.WEBHOOK_SECRET_GRACE_HOURS
    expires = now + datetime.timedelta(hours=grace) if grace > 0 else None
    sender.previous_signing_secret = sender.signing_secret if expires else ""
    sender.previous_secret_expires_at = expires
    sender.signing_secret = signing_secret_generate()
    sender.save(update_fields=ROTATION_FIELDS)  # modified_at: workers reload a webhook they keep
    return expires


def signing_secret_expire_previous(*, sender: Webhook | Channel) -> bool:
    """Stop signing with the previous secret now (every receiver has the new one); False if there was none."""
    if not sender.previous_signing_secret:
        return False
    sender.previous_signing_secret, sender.previous_secret_expires_at = "", None
    sender.save(update_fields=ROTATION_FIELDS)
    return True


def previous_secrets_purge(*, now: datetime.datetime) -> int:
    """Forget previous secrets whose grace period is over (they no longer sign anything)."""
    return sum(model.objects.filter(previous_secret_expires_at__lte=now)
               .update(previous_signing_secret="", previous_secret_expires_at=None) for model in (Webhook, Channel))
