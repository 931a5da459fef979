"""Absolute addresses for e-mails and notifications, from SITE_URL (command 1 sets it from PORT).

Read at call time, not at import, so that a changed setting (a test, a deployment) is used at once."""
from django.conf import settings
from django.urls import reverse


def admin_link(name: str, *args) -> str:
    """An admin page under SITE_URL, e.g. a delivery's log entry."""
    return settings.SITE_URL.rstrip("/") + reverse(name, args=args)


def api_link(path: str) -> str:
    """An address of the REST API: under API_BASE_URL when set, else SITE_URL + /api/v1."""
    base = settings.API_BASE_URL or settings.SITE_URL.rstrip("/") + "/api/v1"
    return f"{base.rstrip('/')}/{path.lstrip('/')}"
