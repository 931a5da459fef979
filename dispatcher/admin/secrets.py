"""Signing secrets in the admin, for webhooks and channels alike: shown, rotated, the old one expired."""
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from dispatcher.senders import secret_rotation


def signing_secrets_html(sender) -> str:
    """The current secret and, during a rotation's grace period, the previous one with its expiry."""
    now = timezone.now()
    previous = ""
    if len(sender.signing_secrets(now)) > 1:
        previous = format_html(
            "<br>Previous: <code>{}</code>, still signing until {} UTC (“Expire the old signing secret now” "
            "stops it).", sender.previous_signing_secret, f"{sender.previous_secret_expires_at:%Y-%m-%d %H:%M}")
    return format_html(
        "<code>{}</code>{}<br><span class='help'>Receivers verify the webhook-signature header with it. “Rotate "
        "signing secret” makes a new one; the old one keeps signing for {} h, so receivers can switch over.</span>",
        sender.signing_secret, previous, f"{settings.WEBHOOK_SECRET_GRACE_HOURS:g}")


def _none_selected(model_admin, request: HttpRequest, senders: list, noun: str) -> bool:
    """Selected ids that are all another organization's (or gone) leave the action nothing to do: say so,
    rather than report a rotation that did not happen."""
    if senders:
        return False
    model_admin.message_user(request, f"No {noun} of yours was selected (another organization's, or deleted "
                             "meanwhile): no signing secret was changed.", messages.WARNING)
    return True


def rotate_signing_secrets(model_admin, request: HttpRequest, queryset, noun: str) -> None:
    senders = list(queryset)
    if _none_selected(model_admin, request, senders, noun):
        return
    expires = None
    for sender in senders:
        expires = secret_rotation.signing_secret_rotate(sender=sender)
    until = (f"the old secrets keep signing until {expires:%Y-%m-%d %H:%M} UTC" if expires
             else "the old secrets no longer sign (no grace period is set)")
    model_admin.message_user(request, f"New signing secrets for {len(senders)} {noun}(s); {until}. Give the "
                             "receivers the new secret.", messages.WARNING)


def expire_previous_signing_secrets(model_admin, request: HttpRequest, queryset, noun: str) -> None:
    senders = list(queryset)
    if _none_selected(model_admin, request, senders, noun):
        return
    count = sum(secret_rotation.signing_secret_expire_previous(sender=sender) for sender in senders)
    model_admin.message_user(request, f"The old signing secret of {count} {noun}(s) no longer signs deliveries."
                             if count else f"None of the selected {noun}s has an old signing secret.",
                             messages.SUCCESS if count else messages.WARNING)
