"""The log formatters config/settings.py's LOGGING declares, built as logging.config builds them, so that tests
read log lines as a process writes them."""
import io
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

PRODUCT = ("config", "crm", "dispatcher", "workflows")

def configured_formatter(name: str) -> logging.Formatter:
    """LOGGING's formatter `name` ("json" or "text")."""
    return logging.config.DictConfigurator({}).configure_formatter(dict(settings.LOGGING["formatters"][name]))


@contextmanager
def written_log(name: str, level: int = logging.INFO) -> Iterator[io.StringIO]:
    """What the product's loggers write meanwhile (not the test receiver's, which logs its requests' URLs), at
    `level` and above, through LOGGING's formatter `name`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured_formatter(name))
    handler.setLevel(level)
    handler.addFilter(lambda record: record.name.split(".")[0] in PRODUCT)
    root = logging.getLogger()
    former = root.level
    root.addHandler(handler)
    root.setLevel(min(level, former) if former else level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(former)
