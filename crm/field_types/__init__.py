"""The field types: one object per type says everything the product does differently for it.

A record value is cleaned on the way in (the API, the admin, captures), rendered into merge fields (the
webhook's date formats and time zone; the content type's encoder then spells the Python value), compared
by workflow conditions, taken from a captured response, and listed in the merge-field catalogue. Each of
those asks the field's type (``kind_of(field)``) instead of switching on ``field_type``, so adding a type is
one class in this package, one ``FieldType`` choice and its tests (tests/crm/test_field_types.py checks that
every choice has its class). The admin's record form asks it too: ``form_field`` is the input a value of the
type gets, ``form_initial`` how a stored value shows in it; what the input gives is cleaned by ``clean``,
exactly as API input is. ``value_schema`` is the JSON Schema of a stored value, which channel
notifications carry as it is (the event catalogue, dispatcher/senders/event_types.py).

- ``base``: what every type answers (``FieldKind``) and what rendering needs (``RenderContext``)
- ``text``, ``numbers``, ``dates``, ``choices``, ``links``: the types, by family
- ``registry``: one object per type (``FIELD_KINDS``), ``field_kind(code)`` and ``kind_of(field)``

What callers use is re-exported here: ``from crm.field_types import kind_of``.
"""
from crm.field_types.base import FieldKind, RenderContext
from crm.field_types.dates import aligned
from crm.field_types.links import id_of
from crm.field_types.registry import FIELD_KINDS, field_kind, kind_of

__all__ = ["FIELD_KINDS", "FieldKind", "RenderContext", "aligned", "field_kind", "id_of", "kind_of"]
