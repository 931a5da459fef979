"""The documentation pages generated from the code, and the one command that writes them.

Each page in PAGES is produced by a function from the code it documents (settings, metrics, the OpenAPI
document, the event catalogue), committed under docs/, and checked by a test: a change to the code that
is not followed by `python scripts/docs_generate.py` fails the test command, so the site cannot drift.
This module sits in config/, above the apps, because its generators come from all of them.
"""
from collections.abc import Callable
from pathlib import Path

from config.api_reference import OPENAPI_PAGE, REFERENCE_PAGE, api_reference, openapi_json
from dispatcher.senders.event_types_page import PAGE as EVENT_TYPES_PAGE, event_types_page
from config.settings_reference import configuration_page
from dispatcher.ops.metrics_reference import monitoring_page

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"

#: docs/-relative path -> function returning the page's full text.
PAGES: dict[str, Callable[[], str]] = {
    OPENAPI_PAGE: openapi_json,
    REFERENCE_PAGE: api_reference,
    EVENT_TYPES_PAGE: event_types_page,
    "operate/configuration.md": configuration_page,
    "operate/monitoring.md": monitoring_page,
}


def pages_stale() -> list[str]:
    """The generated pages whose committed text differs from what the code generates now."""
    return [path for path, generate in PAGES.items()
            if not (DOCS_DIR / path).is_file() or (DOCS_DIR / path).read_text(encoding="utf-8") != generate()]


def pages_write() -> list[str]:
    """Write every generated page; returns those that changed."""
    changed = []
    for path, generate in PAGES.items():
        target, text = DOCS_DIR / path, generate()
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
