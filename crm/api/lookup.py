"""This organization's object, or 404: how every router finds what a path or a body names (a module, a
record, a channel, a delivery, a webhook, a configuration import).

Another organization's object is not found, exactly like a missing one: a 403 would tell which ids exist.
A value no row can hold is not found either, without a query: a NUL in a string (PostgreSQL refuses it in a
query, which would be a 500), an integer beyond its column's range, a UUID that is not one."""
from typing import Any, TypeVar

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Field, Model, QuerySet

from crm.api.errors import ApiError
from crm.models import Organization

M = TypeVar("M", bound=Model)


def owned_or_404(source: type[M] | QuerySet[M], organization: Organization | int, /, *, not_found: str,
                 error_code: str = "not_found", organization_path: str = "organization", **lookup: Any) -> M:
    """The object of source (a model or a queryset, e.g. with select_related) that belongs to organization
    (an Organization or its id, found through organization_path) and matches lookup; else ApiError 404 with
    error_code and the message not_found."""
    queryset = source._default_manager.all() if isinstance(source, type) else source
    found = None
    if _holdable(queryset.model, lookup):
        found = queryset.filter(**{organization_path: organization}, **lookup).first()
    if found is None:
        raise ApiError(404, error_code, not_found)
    return found


def _holdable(model: type[Model], lookup: dict[str, Any]) -> bool:
    """Whether every value of lookup could be stored in its column (relations and paths are not checked)."""
    for name, value in lookup.items():
        if isinstance(value, str) and "\x00" in value:
            return False
        field = _field(model, name)
        if field is None or field.is_relation:
            continue
        try:
            field.run_validators(field.to_python(value))
        except ValidationError:
            return False
    return True


def _field(model: type[Model], name: str) -> Field | None:
    if name == "pk":
        return model._meta.pk
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:  # a path such as module__api_name
        return None
    return field if isinstance(field, Field) else None
