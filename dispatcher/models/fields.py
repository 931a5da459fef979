"""Model fields shared by the dispatcher's models."""
from django.db import models

from dispatcher.transport.addresses import url_normalise, validate_webhook_url


class ReceiverURLField(models.CharField):
    """A URL the guarded client will send to, kept in its normalised form (transport.addresses.url_parse): what is
    validated, stored, shown and sent is one string, so an admin sees `http://127.0.0.1/`, never the
    full-width lookalike that was typed. Normalised when cleaned (forms, full_clean) and again when saved
    (paths that skip cleaning, such as bulk creation)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("validators", [validate_webhook_url])
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return url_normalise(value) if value else value

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if value and len(normalised := url_normalise(value)) <= (self.max_length or len(normalised)):
            value = normalised  # longer than the column (IDNA, %-encoding): cleaning refuses it with a message
            setattr(model_instance, self.attname, value)
        return value
