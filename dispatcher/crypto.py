"""Secrets at rest: a model field that stores Fernet tokens and hands out plain text."""
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

from config.keys import derived_key


@cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        # Derived from SECRET_KEY so a fresh install works; production sets WEBHOOK_SECRETS_KEYS.
        keys = (derived_key(secret_key),)
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.WEBHOOK_SECRETS_KEYS), settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise ValueError("A stored secret cannot be decrypted: check WEBHOOK_SECRETS_KEYS.") from error


class EncryptedTextField(models.TextField):
    """Text encrypted in the database; the empty string stays empty so 'not set' is visible."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value


def reencrypted(token: str) -> str:
    """A stored token encrypted again with the first key (after a key was added in front)."""
    return fernet().rotate(token.encode()).decode()
