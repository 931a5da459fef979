"""The OpenAPI document says what a client needs to call each operation, so that /api/v1/docs can send it:
the API-key scope the operation needs (a security requirement listing it, as OpenAPI 3.1 allows for any
scheme, and a line of the description, which the docs page shows) and, on every POST, the optional
Idempotency-Key header.

django-ninja leaves the scopes of a security requirement empty, so its OpenAPISchema is extended where it
builds an operation (``operation_security``, ``operation_details``); NinjaAPI.get_openapi_schema is the
hook its maintainers point to for this (config/api.py calls ``openapi_schema``).
"""
from typing import Any

from ninja import NinjaAPI
from ninja.openapi.schema import OpenAPISchema
from ninja.operation import Operation

from crm.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from crm.api.idempotency import MAX_LENGTH as IDEMPOTENCY_MAX_LENGTH
from crm.models import ApiScope

# Printable ASCII with at least one character that is not a space: what crm/api/idempotency.py accepts.
IDEMPOTENCY_KEY_PATTERN = r"^[ -~]*[!-~][ -~]*$"

KEY_DESCRIPTION = ("An API key (`crm_…`), made in the admin (API keys → Add) and shown once. Each key has "
                   "scopes, chosen when it is made; each operation lists the one it needs: "
                   + "; ".join(f"`{scope.value}` ({scope.label})" for scope in ApiScope) + ".")

IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "in": "header",
    "name": IDEMPOTENCY_HEADER,
    "required": False,
    "description": f"Optional. A key of yours for this request (1 to {IDEMPOTENCY_MAX_LENGTH} printable ASCII "
                   "characters, e.g. a UUID): the same key with the same request within IDEMPOTENCY_KEY_HOURS "
                   "gets the first answer again (`Idempotent-Replayed: true`) and nothing is done twice; with "
                   "another request, 422 `idempotency_key_reused`; while the first is still being answered, 409 "
                   "`idempotency_request_in_progress`; an empty or longer key, 400 `invalid_idempotency_key`.",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_MAX_LENGTH,
               "pattern": IDEMPOTENCY_KEY_PATTERN},
}

REPLAYED_HEADER: dict[str, Any] = {
    "description": f"`true` when this is the stored answer to an earlier request with the same {IDEMPOTENCY_HEADER}.",
    "schema": {"type": "string", "enum": ["true"]},
}


def operation_scopes(operation: Operation) -> list[str]:
    """The scopes an operation's API-key auth asks for (crm/api/auth.py: key_auth), in order, once each."""
    scopes = [getattr(auth, "scope", None) for auth in operation.auth_callbacks]
    return list(dict.fromkeys(scope for scope in scopes if isinstance(scope, str)))


class ScopedOpenAPISchema(OpenAPISchema):
    def operation_security(self, operation: Operation) -> list[dict[str, Any]] | None:
        """One requirement per way of sending the key (header, query), each naming the operation's scope."""
        requirements = []
        for auth in operation.auth_callbacks:
            scheme = getattr(auth, "openapi_security_schema", None)
            if scheme is None:
                continue
            name = type(auth).__name__  # as django-ninja names schemes
            self.securitySchemes[name] = {**scheme, "description": KEY_DESCRIPTION}
            scope = getattr(auth, "scope", None)
            requirements.append({name: [scope] if isinstance(scope, str) else []})
        return requirements or None

    def operation_details(self, operation: Operation) -> dict[str, Any]:
        details = super().operation_details(operation)
        if scopes := operation_scopes(operation):
            needs = " or ".join(f"`{scope}`" for scope in scopes)
            details["description"] = (details.get("description", "") + f"\n\n**Scope:** {needs} (without it: 403 "
                                      "`missing_scope`).").strip()
            details["x-scopes"] = scopes
        if "POST" in operation.methods:
            details.setdefault("parameters", []).append(dict(IDEMPOTENCY_PARAMETER))
            for status, response in details.get("responses", {}).items():
                if 200 <= int(status) < 300:
                    response.setdefault("headers", {})["Idempotent-Replayed"] = REPLAYED_HEADER
        return details


def openapi_schema(api: NinjaAPI, *, path_prefix: str | None = None,
                   path_params: dict[str, Any] | None = None) -> OpenAPISchema:
    """The document NinjaAPI.get_openapi_schema builds, with the scopes and the Idempotency-Key header."""
    if path_prefix is None:
        path_prefix = api.get_root_path(path_params or {})
    return ScopedOpenAPISchema(api, path_prefix)


def webhooks_include(schema: dict[str, Any], *, webhooks: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Add OpenAPI 3.1 ``webhooks`` (the requests the product sends) after the paths, and the schemas they refer
    to. A name the API's own schemas already use is refused: it would silently replace one of them."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if clashes := sorted(set(components) & set(schemas)):
        raise ValueError(f"Payload schema names already used by the API's schemas: {', '.join(clashes)}.")
    components.update(schemas)
    schema["webhooks"] = webhooks
    for key in [key for key in schema if key not in ("openapi", "info", "paths", "webhooks")]:
        schema[key] = schema.pop(key)  # keeps their order, after webhooks
