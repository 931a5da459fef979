"""The REST API: one django-ninja NinjaAPI with every app's router, served at /api/v1/, its OpenAPI 3.1
document at /api/v1/openapi.json and a docs page (Swagger UI, served from the ninja package, no CDN) at
/api/v1/docs.

Every error is a problem document (crm/api/errors.py): ApiError from the views, and the framework's own
(validation, 404, 405 and anything unexpected) translated here, so no answer of the API is HTML or a bare
500 page."""
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.operation import Operation

from crm.api.errors import PROBLEM_CONTENT_TYPE, ApiError, error_response_of, problem_response
from crm.api.openapi import openapi_schema, webhooks_include
from crm.api.parser import HardenedParser, json_body
from crm.apis import router as records_router
from dispatcher.api import channels_router, deliveries_router, event_types_router, webhooks_router
from dispatcher.senders.payload_schemas import payload_schemas, payload_webhooks
from workflows.apis import router as configuration_router

logger = logging.getLogger(__name__)

DESCRIPTION = """Records, event subscriptions (channels), the delivery log with resend and recover, usage,
webhooks and workflow rules, and the configuration file. Authenticate with an API key in the `X-API-Key`
header (or `?zapikey=`); each operation needs one scope of the key. Errors are RFC 9457 problem documents
with a `code`. POSTs accept an `Idempotency-Key` header. See docs/integrate/rest-api.md. The `webhooks`
describe what this product sends to receivers: channel notifications and verifications, workflow webhooks."""


class CrmApi(NinjaAPI):
    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> OpenAPISchema:
        """Each operation names its API-key scope and every POST its Idempotency-Key header
        (crm/api/openapi.py); errors are documented as application/problem+json, which is what they are; and
        the requests the product sends are its webhooks (dispatcher/senders/payload_schemas.py)."""
        schema = openapi_schema(self, *args, **kwargs)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    if str(status) >= "400" and "application/json" in response.get("content", {}):
                        response["content"] = {PROBLEM_CONTENT_TYPE: response["content"]["application/json"]}
        webhooks_include(schema, webhooks=payload_webhooks(), schemas=payload_schemas())
        return schema

    def get_openapi_operation_id(self, operation: Operation) -> str:
        """The app and the view (crm_apis_records_list, dispatcher_apis_channel_read) as they were named when
        each app's API was one module (apis.py), not the file a router sits in: clients generated from the
        document keep their method names when a router moves to a file of its own (dispatcher/api/)."""
        return f"{operation.view_func.__module__.split('.')[0]}_apis_{operation.view_func.__name__}"


api = CrmApi(title="CRM webhooks API", version="1", description=DESCRIPTION, parser=HardenedParser(),
             urls_namespace="api", openapi_url="/openapi.json", docs_url="/docs")
api.add_router("/records", records_router)
api.add_router("/channels", channels_router)
api.add_router("/event-types", event_types_router)
api.add_router("/webhooks", webhooks_router)
api.add_router("", deliveries_router)
api.add_router("", configuration_router)


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, error: ApiError) -> HttpResponse:
    return error_response_of(error)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, error: ValidationError) -> HttpResponse:
    """Pydantic's findings, by parameter: a body of the wrong shape, or a query parameter of the wrong type."""
    fields: dict[str, list[str]] = {}
    for item in error.errors:
        location = [str(part) for part in item.get("loc", ())]
        name = ".".join(location[1:]) or location[0] if location else "__all__"
        fields.setdefault(name if location and location[0] != "body" else "body", []).append(item.get("msg", ""))
    if set(fields) == {"body"}:
        if not request.body:  # nothing sent: say what to send (415 without a JSON content type)
            try:
                json_body(request)
            except ApiError as problem:
                return error_response_of(problem)
        return problem_response(400, "invalid_body", "The body does not have the shape this operation takes: "
                                + "; ".join(fields["body"]) + ".", fields=fields)
    return problem_response(400, "invalid_fields", f"Some values are not valid: {', '.join(sorted(fields))}.",
                            fields=fields)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, error: AuthenticationError) -> HttpResponse:
    return problem_response(401, "unauthorized", "Send a valid API key in the X-API-Key header.")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, error: Http404) -> HttpResponse:
    return problem_response(404, "not_found", f"There is no API endpoint {request.path}.")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, error: HttpError) -> HttpResponse:
    if isinstance(error.__cause__, ApiError):  # ninja wraps what the body parser (json_body) raised
        return error_response_of(error.__cause__)
    return problem_response(error.status_code, "error", str(error))


@api.exception_handler(RequestDataTooBig)
def _too_large(request: HttpRequest, error: RequestDataTooBig) -> HttpResponse:
    return problem_response(413, "too_large", f"The body may have at most {settings.API_MAX_BODY_BYTES} bytes.")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, error: Exception) -> HttpResponse:
    logger.exception("api.internal_error path=%s", request.path)
    return problem_response(500, "internal_error", "Something went wrong on our side; it is logged. Try again, "
                            "or tell the administrators.")
