"""The text log line with the event's fields (LOG_FORMAT=text); the JSON one is python-json-logger's
(config/settings.py LOGGING). Kept free of app imports, as logging is configured before apps load."""
import json
import logging
import re

from pythonjsonlogger.core import RESERVED_ATTRS

# What a record carries that is not an event's field: the LogRecord's own attributes (python-json-logger's list),
# Django's request object (django.request), whose text holds the full URL, query string included, and the
# values of django.db.backends' statements (params, at DEBUG: a record's values).
NOT_FIELDS = (*RESERVED_ATTRS, "taskName", "request", "params")
_QUOTED = re.compile(r'[\s"=]')


def _text(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if not value or _QUOTED.search(value) else value
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """The usual line, then the fields given as ``extra`` as key=value: the text log says what the JSON one says."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = " ".join(f"{key}={_text(value)}" for key, value in vars(record).items()
                          if key not in NOT_FIELDS and not key.startswith("_"))
        return f"{line} {fields}" if fields else line


def logging_config(*, log_format: str, level: str) -> dict:
    """Django's LOGGING for LOG_FORMAT (json or text) and the root level."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"()": "config.logformat.TextFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
            # python-json-logger: level, logger and message renamed as before, then the fields given as extra=.
            "json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": ["levelname", "name", "message"],
                     "rename_fields": {"levelname": "level", "name": "logger", "exc_info": "exception"},
                     "timestamp": "time", "reserved_attrs": NOT_FIELDS, "json_ensure_ascii": False},
        },
        "handlers": {"console": {"class": "logging.StreamHandler",
                                 "formatter": "json" if log_format == "json" else "text"}},
        "root": {"handlers": ["console"], "level": level},
    }
