"""REST API for records: list, read, create, update, delete and bulk create, as a django-ninja router.

Views stay thin: they authenticate (crm/api/auth.py), parse and answer; crm.services validates and writes,
and announces each change, so workflow rules fire in the same transaction as the change.
"""
from typing import Any

from django.core.exceptions import ValidationError
from ninja import Body, Query, Router, Schema
from pydantic import Field

from crm import services
from crm.api.auth import ApiRequest, key_auth
from crm.api.envelopes import Answer, Page
from crm.api.errors import COMMON_ERRORS, POST_ERRORS, ApiError, invalid_fields
from crm.api.idempotency import idempotent
from crm.api.lookup import owned_or_404
from crm.api.pagination import page
from crm.api.params import DATETIME_DESCRIPTION, datetime_param
from crm.models import ApiKey, ApiScope, Module, Record

BULK_MAX = 100  # records per bulk request

router = Router(tags=["records"])
READ, WRITE = key_auth(ApiScope.RECORDS_READ), key_auth(ApiScope.RECORDS_WRITE)


class Owner(Schema):
    id: int
    name: str


class RecordOut(Schema):
    id: int
    module: str
    owner: Owner
    created_time: str
    modified_time: str
    values: dict[str, Any]


class Deleted(Schema):
    id: int
    deleted: bool


class RecordFilters(Schema):
    cursor: str | None = None
    limit: int | None = None
    modified_since: str | None = Field(None, description=DATETIME_DESCRIPTION)
    equals: list[str] = []


def module_of(key: ApiKey, name: str) -> Module:
    return owned_or_404(Module, key.organization_id, api_name=name, not_found=f"There is no module “{name}”.",
                        error_code="unknown_module")


def _record(module: Module, pk: int) -> Record:
    return owned_or_404(Record.objects.select_related("module__organization", "owner"), module.organization_id,
                        organization_path="module__organization", module=module, pk=pk,
                        not_found=f"There is no {module.singular_label} record with id {pk}.")


def record_data(record: Record) -> dict[str, Any]:
    return {
        "id": record.pk,
        "module": record.module.api_name,
        "owner": {"id": record.owner_id, "name": record.owner.full_name},
        "created_time": record.created_at.isoformat(),
        "modified_time": record.modified_at.isoformat(),
        "values": record.values,
    }


@router.get("/{module}/", response={200: Page[RecordOut], **COMMON_ERRORS}, auth=READ, summary="List records")
def records_list(request: ApiRequest, module: str, filters: Query[RecordFilters]):
    """Newest first, ``limit`` (1–200, default 50) per page; pass ``next_cursor`` back as ``cursor`` for the
    next page. ``modified_since`` (ISO 8601; without an offset, UTC) and ``equals=API_name:value`` (repeatable;
    the value as the API returns it, e.g. ``Amount:99.50``) narrow the list."""
    target = module_of(request.auth, module)
    records = Record.objects.filter(module=target).select_related("module", "owner")
    if (since := datetime_param(filters.modified_since, name="modified_since")) is not None:
        records = records.filter(modified_at__gte=since)
    fields = set(target.fields.values_list("api_name", flat=True))
    for condition in filters.equals:
        name, separator, value = condition.partition(":")
        if not separator or name not in fields or "\x00" in value:
            raise ApiError(400, "invalid_fields", "Some values are not valid: equals.", fields={"equals": [
                f"“{condition}” is not API_name:value with a field of {target.api_name}."]})
        records = records.filter(**{f"values__{name}": value})
    return page(records, cursor=filters.cursor, limit=filters.limit, serialize=record_data)


@router.post("/{module}/", response={201: Answer[RecordOut], **POST_ERRORS}, auth=WRITE,
             summary="Create a record")
def records_create(request: ApiRequest, module: str, values: Body[dict[str, Any]]):
    """Creates the record and fires the workflow rules of the module, as the admin would."""
    target = module_of(request.auth, module)

    def create() -> tuple[int, dict]:
        try:
            record = services.record_create(module=target, owner=request.auth.user, values=values)
        except ValidationError as error:
            raise invalid_fields(error) from None
        return 201, {"data": record_data(record)}

    return idempotent(request, request.auth, create)


@router.post("/{module}/bulk/", response={201: Answer[list[RecordOut]], **POST_ERRORS},
             auth=WRITE, summary="Create up to 100 records")
def records_bulk_create(request: ApiRequest, module: str, records: Body[list[Any]]):
    """All or none: one invalid record and nothing is created or fired."""
    target = module_of(request.auth, module)
    if not records:
        raise ApiError(400, "invalid_body", "Send a JSON array of records (objects of field values).")
    if len(records) > BULK_MAX:
        raise ApiError(400, "too_many_records", f"At most {BULK_MAX} records per request; this has {len(records)}.")

    def create() -> tuple[int, dict]:
        try:
            made = services.records_create(module=target, owner=request.auth.user, items=records)
        except services.RecordsInvalid as error:
            raise ApiError(400, "invalid_records", str(error), records=error.errors) from None
        return 201, {"data": [record_data(r) for r in made]}

    return idempotent(request, request.auth, create)


@router.get("/{module}/{int:pk}/", response={200: Answer[RecordOut], **COMMON_ERRORS}, auth=READ, summary="Read a record")
def record_read(request: ApiRequest, module: str, pk: int):
    return {"data": record_data(_record(module_of(request.auth, module), pk))}


def _update(request: ApiRequest, module: str, pk: int, values: dict[str, Any], *, replace: bool) -> dict:
    record = _record(module_of(request.auth, module), pk)
    try:
        record = services.record_update(record=record, values=values, replace=replace)
    except ValidationError as error:
        raise invalid_fields(error) from None
    return {"data": record_data(record)}


@router.patch("/{module}/{int:pk}/", response={200: Answer[RecordOut], **COMMON_ERRORS}, auth=WRITE,
              summary="Change some values of a record")
def record_patch(request: ApiRequest, module: str, pk: int, values: Body[dict[str, Any]]):
    return _update(request, module, pk, values, replace=False)


@router.put("/{module}/{int:pk}/", response={200: Answer[RecordOut], **COMMON_ERRORS}, auth=WRITE,
            summary="Replace the values of a record")
def record_put(request: ApiRequest, module: str, pk: int, values: Body[dict[str, Any]]):
    return _update(request, module, pk, values, replace=True)


@router.delete("/{module}/{int:pk}/", response={200: Answer[Deleted], **COMMON_ERRORS}, auth=WRITE,
               summary="Delete a record")
def record_delete(request: ApiRequest, module: str, pk: int):
    services.record_delete(record=_record(module_of(request.auth, module), pk))
    return {"data": {"id": pk, "deleted": True}}
