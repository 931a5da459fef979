"""Values made storable: what a receiver sends (or a capture takes) can hold bytes that a database
refuses (NUL in text and JSON on PostgreSQL, lone surrogates in UTF-8) or be far larger than a log
needs (megabytes of headers). Each is cleaned or cut, and the attempt records what was done."""
import re
from typing import Any

from django.conf import settings

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> tuple[str, bool]:
    """text without NUL and lone surrogates (each replaced by U+FFFD); True when something was replaced."""
    if not _UNSTORABLE.search(text):
        return text, False
    return _UNSTORABLE.sub(REPLACEMENT, text), True


def clean_json(value: Any) -> tuple[Any, bool]:
    """A JSON value (keys too) with every string cleaned."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        changed, cleaned = False, {}
        for key, item in value.items():
            new_key, key_changed = clean_text(str(key))
            cleaned[new_key], item_changed = clean_json(item)
            changed = changed or key_changed or item_changed
        return cleaned, changed
    if isinstance(value, (list, tuple)):
        items = [clean_json(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    return value, False


def clean_headers(headers: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Response headers as stored: cleaned, and at most WEBHOOK_MAX_STORED_HEADER_BYTES in all (names and
    values, as UTF-8); returns them with notes of what was done."""
    cap = settings.WEBHOOK_MAX_STORED_HEADER_BYTES
    kept: dict[str, str] = {}
    notes: list[str] = []
    size, replaced = 0, False
    for name, value in headers.items():
        (name, name_changed), (value, value_changed) = clean_text(str(name)), clean_text(str(value))
        replaced = replaced or name_changed or value_changed
        cost = len(name.encode()) + len(value.encode())
        if size + cost > cap:
            room = cap - size - len(name.encode())
            if room > 0:
                kept[name] = value.encode()[:room].decode("utf-8", "ignore")
            notes.append(f"response headers cut at {cap // 1024} KB ({len(kept)} of {len(headers)} kept)")
            break
        kept[name] = value
        size += cost
    if replaced:
        notes.insert(0, "NUL bytes or invalid text in response headers replaced")
    return kept, notes

