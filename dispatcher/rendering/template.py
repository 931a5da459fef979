"""Merge-field templates: ``Hello ${Contacts.First Name}`` parsed once into literal text and slots.

No template engine ever evaluates admin-written text: a template is only literal strings and
field references, so there is nothing to sandbox, and rendering is a join.
"""
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from config.caches import cache_register

# ${Module.Field Label}: the module name has no dot, the label may contain spaces, dots and brackets.
MERGE_FIELD_RE = re.compile(r"\$\{\s*([^{}.]+?)\s*\.\s*([^{}]+?)\s*\}")
UNSUPPORTED = "${Unsupported_Field}"


class MergeField(NamedTuple):
    """A tuple, so that looking one up (every render, every field) hashes in C."""

    module: str
    label: str

    def __str__(self) -> str:
        return f"${{{self.module}.{self.label}}}"


@dataclass(frozen=True, slots=True)
class Slot:
    field: MergeField
    in_json_string: bool = False  # only meaningful for JSON bodies: inside "..." or a bare JSON value
    in_xml_comment: bool = False  # only meaningful for XML bodies: inside <!-- … -->


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[str | Slot, ...]
    single_field: MergeField | None = None  # when the template is exactly one merge field and nothing else

    @property
    def merge_fields(self) -> tuple[MergeField, ...]:
        return tuple(part.field for part in self.parts if isinstance(part, Slot))


def merge_fields_in(text: str) -> list[MergeField]:
    return [MergeField(module, label) for module, label in MERGE_FIELD_RE.findall(text)]


@lru_cache(maxsize=4096)
def template_compile(text: str, *, json_context: bool = False, xml_context: bool = False) -> Template:
    """Split text into literals and slots; with json_context, note whether each slot sits in a JSON string,
    with xml_context whether it sits in an XML comment."""
    parts: list[str | Slot] = []
    in_string = escaped = in_comment = False
    position = 0
    for match in MERGE_FIELD_RE.finditer(text):
        literal = text[position:match.start()]
        if literal:
            parts.append(literal)
            if json_context:
                in_string, escaped = _scan_json_strings(literal, in_string, escaped)
            if xml_context:
                in_comment = _scan_xml_comments(literal, in_comment)
        parts.append(Slot(MergeField(match.group(1), match.group(2)), in_json_string=in_string,
                          in_xml_comment=in_comment))
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    single = parts[0].field if len(parts) == 1 and isinstance(parts[0], Slot) else None
    return Template(tuple(parts), single)


def _scan_xml_comments(literal: str, in_comment: bool) -> bool:
    """Whether the text after literal is inside <!-- … -->, given whether it started inside one."""
    position = 0
    while True:
        marker = "-->" if in_comment else "<!--"
        found = literal.find(marker, position)
        if found < 0:
            return in_comment
        in_comment, position = not in_comment, found + len(marker)


def _scan_json_strings(literal: str, in_string: bool, escaped: bool) -> tuple[bool, bool]:
    for char in literal:
        if escaped:
            escaped = False
        elif in_string and char == "\\":
            escaped = True
        elif char == '"':
            in_string = not in_string
    return in_string, escaped


cache_register("compiled templates", template_compile.cache_clear)
