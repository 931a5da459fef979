"""A webhook's secrets: which fields hold them and which the configuration leaves unused, the host each may
be sent to (a URL moved to another origin asks for them again), and whether its signing secrets can sign."""
import base64
import binascii
import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from dispatcher.models import AuthType, Webhook
from dispatcher.transport.addresses import url_parse
from dispatcher.transport.signing import SECRET_PREFIX


# Secret fields of a webhook: how they are named to a person, and the URL fields whose hosts they belong to.
# The OAuth client secret belongs to both: it is sent to the token URL, and the access token it buys is sent
# to the webhook's URL, so moving either asks for it again.
WEBHOOK_SECRETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "auth_password": ("the Basic password", ("url",)),
    "auth_token": ("the bearer token", ("url",)),
    "oauth_client_secret": ("the OAuth client secret", ("oauth_token_url", "url")),
    "tls_client_key": ("the client certificate's key", ("url",)),
}


def webhook_unused_secrets(*, auth_type: str | None, certificate: str) -> set[str]:
    """Secret fields the configuration does not use: they are cleared rather than kept unseen."""
    secret_of: dict[str, str] = {AuthType.BASIC: "auth_password", AuthType.BEARER: "auth_token",
                                 AuthType.OAUTH2: "oauth_client_secret"}
    used = secret_of.get(auth_type or "")
    unused = {"auth_password", "auth_token", "oauth_client_secret"} - {used}
    return unused | ({"tls_client_key"} if not certificate else set())


def url_origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of the normalised URL (transport.addresses.url_parse): what a secret is entered for, so
    a lookalike spelling of a host is the host it reads as."""
    try:
        parts = url_parse(url)
    except ValidationError:
        return "", url, None
    return parts.scheme, (parts.raw_host or "").rstrip(".").lower(), parts.port


def webhook_retarget_problem(*, stored_url: str, url: str, kept: list[str]) -> str | None:
    """Secrets go only to the origin they were entered for: a URL moved to another scheme, host or port
    needs every secret it keeps entered again (the admin form and import_config both ask)."""
    before, after = url_origin(stored_url), url_origin(url)
    if not kept or before == after:
        return None
    return (f"The URL now goes to {after[0]}://{after[1]}:{after[2]} instead of {before[0]}://{before[1]}:{before[2]}: "
            f"enter {', '.join(kept)} again. Secrets are only sent to the host they were entered for.")


def webhook_secret_retarget_problem(*, name: str, stored: Webhook, urls: dict[str, Any]) -> str | None:
    """Why the stored secret `name` may not be kept with these URLs (a host it belongs to moved), or None."""
    what, origin_fields = WEBHOOK_SECRETS[name]
    return next((problem for field in origin_fields if (problem := webhook_retarget_problem(
        stored_url=getattr(stored, field), url=urls.get(field) or "", kept=[what]))), None)


SIGNING_SECRET_BYTES = (24, 64)  # Standard Webhooks: a secret of 24 to 64 random bytes, base64 after "whsec_"


def signing_secret_problem(secret: str) -> str | None:
    """Why a signing secret cannot sign (a receiver could not verify it), or None. Never repeats the secret."""
    least, most = SIGNING_SECRET_BYTES
    expected = (f"a signing secret is “{SECRET_PREFIX}” followed by {least} to {most} random bytes in base64, as "
                "“Rotate signing secret” makes them")
    if not secret.startswith(SECRET_PREFIX):
        return f"This is not a signing secret: {expected}."
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return f"This is not base64 after “{SECRET_PREFIX}”: {expected}."
    if not least <= len(key) <= most:
        return f"This secret has {len(key)} bytes: {expected}."
    return None


def webhook_check_signing(*, webhook: Webhook, now: datetime.datetime) -> list[tuple[str, str]]:
    """The signing secrets as a rotation leaves them: both well-formed, and the previous one signing for at
    most WEBHOOK_SECRET_GRACE_HOURS from now. (field, message) pairs."""
    problems = []
    if problem := signing_secret_problem(webhook.signing_secret):
        problems.append(("signing_secret", problem))
    if webhook.previous_signing_secret:
        if problem := signing_secret_problem(webhook.previous_signing_secret):
            problems.append(("previous_signing_secret", problem))
        expires, grace = webhook.previous_secret_expires_at, settings.WEBHOOK_SECRET_GRACE_HOURS
        if expires is None:
            problems.append(("previous_signing_secret", "The previous secret needs the time it stops signing."))
        elif expires > now + datetime.timedelta(hours=grace):
            problems.append(("previous_signing_secret",
                             f"The previous secret would sign until {expires:%Y-%m-%d %H:%M %Z}; after a rotation "
                             f"it signs for at most WEBHOOK_SECRET_GRACE_HOURS ({grace:g} h) from now."))
    return problems
