"""Errors as RFC 9457 problem documents (application/problem+json).

Every error of the API is one of these: ``type``, ``title``, ``status``, ``detail``, plus the extension
members ``code`` (a stable machine-readable name, the field clients have always matched on) and whatever
details the error has (``fields``, ``allowed``, ``retry_after``, …). The ``error`` member repeats ``code``,
``message`` and the details as they were before problem documents, so clients written against the first
version of the API keep working.
"""
from http import HTTPStatus
from typing import Any

from django.core.exceptions import ValidationError
from django.http import JsonResponse
from ninja import Schema
from pydantic import ConfigDict

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://crm-webhooks.example/problems/"  # documented in docs/integrate/rest-api.md, "Errors"


class ApiError(Exception):
    """An answer other than success: raised anywhere in a view, answered as a problem document."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class LegacyError(Schema):
    code: str
    message: str
    model_config = ConfigDict(extra="allow")


class Problem(Schema):
    """An RFC 9457 problem document with the API's extension members."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    error: LegacyError
    model_config = ConfigDict(extra="allow")


def problem_document(status: int, code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"type": PROBLEM_TYPE_BASE + code, "title": HTTPStatus(status).phrase, "status": status, "detail": message,
            "code": code, **details, "error": {"code": code, "message": message, **details}}


def problem_response(status: int, code: str, message: str, **details: Any) -> JsonResponse:
    response = JsonResponse(problem_document(status, code, message, **details), status=status,
                            content_type=PROBLEM_CONTENT_TYPE, json_dumps_params={"ensure_ascii": False})
    if status == 405 and "allowed" in details:
        response["Allow"] = ", ".join(details["allowed"])
    if status == 429 and "retry_after" in details:
        response["Retry-After"] = str(details["retry_after"])
    return response


def invalid_fields(error: ValidationError, **extra: Any) -> ApiError:
    """A service's ValidationError as the API's 400, message per field."""
    fields = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
    names = ", ".join(sorted(fields))
    return ApiError(400, "invalid_fields", f"Some values are not valid: {names}.", fields=fields, **extra)


def error_response_of(error: ApiError) -> JsonResponse:
    return problem_response(error.status, error.code, error.message, **error.details)


# Statuses every operation may answer with a problem document (the OpenAPI document lists them).
COMMON_ERRORS = {400: Problem, 401: Problem, 403: Problem, 404: Problem, 413: Problem, 415: Problem, 422: Problem,
                 429: Problem}
POST_ERRORS = {**COMMON_ERRORS, 409: Problem}  # and the conflicts of a POST (Idempotency-Key, state)
