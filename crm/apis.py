"""REST API for records: JSON in and out, API-key authentication, errors as JSON with a code.

Views stay thin: they authenticate, parse and answer; crm.services validates and writes, and
announces each change, so workflow rules fire in the same transaction as the change.
"""
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from crm import services
from crm.models import ApiKey, Module, Record

BULK_MAX = 100  # records per bulk request


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, **details: Any) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **details}}, status=status)


def api_view(methods: set[str]) -> Callable:
    """Authenticate by X-API-Key or ?zapikey=, allow the given methods, turn ApiError into JSON."""

    def decorate(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> JsonResponse:
            if request.method not in methods:
                response = error_response(405, "method_not_allowed", f"{request.method} is not allowed here.",
                                          allowed=sorted(methods))
                response["Allow"] = ", ".join(sorted(methods))
                return response
            raw = request.headers.get("X-API-Key") or request.GET.get("zapikey")
            key = services.api_key_authenticate(raw=raw) if raw else None
            if key is None:
                return error_response(401, "unauthorized", "Send a valid API key in the X-API-Key header or the "
                                      "zapikey query parameter." if not raw else "This API key is not valid or was revoked.")
            if (wait := services.api_rate_take(key=key, now=timezone.now())) is not None:
                response = error_response(429, "rate_limited", f"This key made {settings.API_RATE_LIMIT_PER_MINUTE} "
                                          f"calls this minute, the most it may; try again in {wait} s.",
                                          retry_after=wait)
                response["Retry-After"] = str(wait)
                return response
            try:
                return view(request, key, *args, **kwargs)
            except ApiError as error:
                return error_response(error.status, error.code, error.message, **error.details)

        return wrapper

    return decorate


def _module(key: ApiKey, name: str) -> Module:
    # A NUL (%00 in the path) cannot even be sent to PostgreSQL in a query: no module has it in its name.
    module = None if "\x00" in name else Module.objects.filter(organization_id=key.organization_id,
                                                               api_name=name).first()
    if module is None:
        raise ApiError(404, "unknown_module", f"There is no module “{name}”.")
    return module


def _record(key: ApiKey, module: Module, pk: int) -> Record:
    # Another organization's record is not found, exactly like a missing one: a 403 would tell which ids exist.
    record = Record.objects.select_related("module__organization", "owner").filter(pk=pk, module=module).first()
    if record is None:
        raise ApiError(404, "not_found", f"There is no {module.singular_label} record with id {pk}.")
    return record


def json_body(request: HttpRequest) -> Any:
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json).")
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.API_MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"The body may have at most {settings.API_MAX_BODY_BYTES} bytes.")
    try:
        data = json.loads(request.body or b"null")
        # Lone surrogates ("\ud800") are valid JSON escapes but not text: no database can store them.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except RequestDataTooBig:
        raise ApiError(413, "too_large", f"The body may have at most {settings.API_MAX_BODY_BYTES} bytes.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {error}.") from None
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", "The body contains text that is not valid Unicode (a lone surrogate "
                                            "escape such as \\ud800).") from None
    except (RecursionError, ValueError) as error:  # nesting too deep; an integer with too many digits
        reason = "it is nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ApiError(400, "invalid_json", f"The body cannot be read as JSON: {reason}.") from None
    return data


def _values(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "Send a JSON object of field values keyed by API name.")
    return data


def invalid_fields(error: ValidationError, **extra: Any) -> ApiError:
    fields = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
    names = ", ".join(sorted(fields))
    return ApiError(400, "invalid_fields", f"Some values are not valid: {names}.", fields=fields, **extra)


def record_data(record: Record) -> dict[str, Any]:
    return {
        "id": record.pk,
        "module": record.module.api_name,
        "owner": {"id": record.owner_id, "name": record.owner.full_name},
        "created_time": record.created_at.isoformat(),
        "modified_time": record.modified_at.isoformat(),
        "values": record.values,
    }


@api_view({"POST"})
def records_create(request: HttpRequest, key: ApiKey, module: str) -> JsonResponse:
    target = _module(key, module)
    values = _values(json_body(request))
    try:
        record = services.record_create(module=target, owner=key.user, values=values)
    except ValidationError as error:
        raise invalid_fields(error) from None
    return JsonResponse({"data": record_data(record)}, status=201)


@api_view({"POST"})
def records_bulk_create(request: HttpRequest, key: ApiKey, module: str) -> JsonResponse:
    """Up to 100 records, all or none: one invalid record and nothing is created or fired."""
    target = _module(key, module)
    data = json_body(request)
    if not isinstance(data, list) or not data:
        raise ApiError(400, "invalid_body", "Send a JSON array of records (objects of field values).")
    if len(data) > BULK_MAX:
        raise ApiError(400, "too_many_records", f"At most {BULK_MAX} records per request; this has {len(data)}.")
    errors: dict[str, Any] = {}
    try:
        with transaction.atomic():
            records = []
            for index, values in enumerate(data):
                try:
                    records.append(services.record_create(module=target, owner=key.user, values=_values(values)))
                except ValidationError as error:
                    errors[str(index)] = error.message_dict if hasattr(error, "error_dict") else error.messages
                except ApiError as error:
                    errors[str(index)] = {"__all__": [error.message]}
            if errors:
                raise ValidationError("invalid")
    except ValidationError:
        raise ApiError(400, "invalid_records", f"{len(errors)} of {len(data)} records are not valid; none was "
                       "created.", records=errors) from None
    return JsonResponse({"data": [record_data(r) for r in records]}, status=201)


@api_view({"GET", "PUT", "PATCH", "DELETE"})
def record_detail(request: HttpRequest, key: ApiKey, module: str, pk: int) -> JsonResponse:
    target = _module(key, module)
    record = _record(key, target, pk)
    if request.method == "GET":
        return JsonResponse({"data": record_data(record)})
    if request.method == "DELETE":
        services.record_delete(record=record)
        return JsonResponse({"data": {"id": pk, "deleted": True}})
    values = _values(json_body(request))
    try:
        record = services.record_update(record=record, values=values, replace=request.method == "PUT")
    except ValidationError as error:
        raise invalid_fields(error) from None
    return JsonResponse({"data": record_data(record)})


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    return error_response(404, "not_found", f"There is no API endpoint {request.path}.")
