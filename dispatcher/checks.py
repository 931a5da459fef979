"""System checks of our own: no process runs, without debug, on keys anyone with the source knows, nor with
an egress proxy it cannot use, nor with an HTTP library that bypasses the connect-time address check or
would not tunnel through the egress proxy.

They run with every management command (`migrate`, `check`, `check --deploy`) and when the web and Celery
processes start (config/wsgi.py, config/celery.py), which refuse to start on an error."""
from django.conf import settings
from django.core import checks

from config.keys import INSECURE_SECRET_KEY
from dispatcher.transport.client import EgressProxy
from dispatcher.transport.probes import egress_problem, guard_problem


@checks.register(checks.Tags.security)
def keys_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if settings.DEBUG:
        return []
    problems: list[checks.CheckMessage] = []
    if settings.SECRET_KEY == INSECURE_SECRET_KEY:
        problems.append(checks.Error(
            "DJANGO_SECRET_KEY is the default shipped with the source.",
            hint="Set DJANGO_SECRET_KEY to a long random value (scripts/bootstrap.sh keeps one in var/secret-key).",
            id="dispatcher.E001"))
    if not settings.WEBHOOK_SECRETS_KEYS:
        problems.append(checks.Error(
            "WEBHOOK_SECRETS_KEYS is empty: stored passwords and tokens would be encrypted with a key derived "
            "from DJANGO_SECRET_KEY.",
            hint='Set WEBHOOK_SECRETS_KEYS to a Fernet key: python -c "from cryptography.fernet import Fernet; '
                 'print(Fernet.generate_key().decode())" (scripts/bootstrap.sh keeps one in var/secrets-keys).',
            id="dispatcher.E002"))
    return problems


@checks.register(checks.Tags.security)
def egress_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if not settings.WEBHOOK_EGRESS_PROXY:
        return []
    try:
        EgressProxy.from_url(settings.WEBHOOK_EGRESS_PROXY)
    except ValueError as error:
        return [checks.Error(f"WEBHOOK_EGRESS_PROXY is not usable: {error}", hint="Fix or unset it.",
                             id="dispatcher.E003")]
    return []


@checks.register(checks.Tags.security)
def guard_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """What the transport relies on in aiohttp, which it uses through public hooks only: socket_factory sees
    every connection (the guard) and, with an egress proxy, connects through the socket it returns for the
    resolver's answer (the tunnel)."""
    problems: list[checks.CheckMessage] = []
    if (problem := guard_problem()) is not None:
        problems.append(checks.Error(
            f"The outbound guard is not in effect: {problem}.",
            hint="The installed aiohttp no longer calls the connector's socket_factory for every connection; "
                 "install the version requirements.txt pins.",
            id="dispatcher.E004"))
    if settings.WEBHOOK_EGRESS_PROXY and (problem := egress_problem()) is not None:
        problems.append(checks.Error(
            f"The egress proxy cannot be used: {problem}.",
            hint="The installed aiohttp no longer connects through the socket its socket_factory returns for "
                 "the resolver's answer; install the version requirements.txt pins.",
            id="dispatcher.E004"))
    return problems


def insecure_start_reason(process: str) -> str | None:
    """Why a process must not start (the checks above), or None."""
    errors = [message for message in keys_check() + egress_check() + guard_check() if message.is_serious()]
    if not errors:
        return None
    return f"The {process} refuses to start: " + "; ".join(f"{e.msg} {e.hint}" for e in errors)
