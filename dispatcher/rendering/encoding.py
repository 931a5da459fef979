"""Escaping a merge-field value for where it lands: JSON text, a bare JSON value, XML, or plain text."""
import json
import re
from decimal import Decimal
from typing import Any

from dispatcher.rendering.merge import Unsupported
from dispatcher.rendering.template import UNSUPPORTED

# Characters XML 1.0 does not allow at all, even escaped; they are dropped.
XML_ILLEGAL_RE = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Line breaks and tabs as character references: parsers keep them exactly, in text and in attributes
# (where a literal newline would be normalised to a space).
XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;",
                             "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def as_text(value: Any) -> str:
    if type(value) is str:  # most values; checked first because this runs for every field of every request
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Unsupported):
        return UNSUPPORTED
    if isinstance(value, list):
        return ", ".join(as_text(item) for item in value)
    return str(value)


def as_json_value(value: Any) -> str:
    """A merge field outside quotes in a JSON body: numbers and booleans bare, everything else quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(as_json_value(item) for item in value) + "]"
    return json.dumps(as_text(value), ensure_ascii=False)


def in_json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def xml_comment_text(text: str) -> str:
    """Text inside an XML comment, which may not hold "--" nor end with "-" (the comment would end there, or
    the document stop being well-formed)."""
    text = XML_ILLEGAL_RE.sub("", text)
    while "--" in text:
        text = text.replace("--", "- -")
    return text + " " if text.endswith("-") else text


def xml_text(text: str) -> str:
    """Escaped for both element text and attribute values, so the template author needs no care."""
    return XML_ILLEGAL_RE.sub("", text).translate(XML_ESCAPES)
