"""Webhook definitions: the checks that span several fields, previews, test sends, secret rotation."""
import dataclasses
import json
import uuid
from urllib.parse import urlsplit
from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from lxml import etree

from crm.models import Record
from dispatcher.capture import captures_check
from dispatcher.delivery import delivery_log_test
from dispatcher.http_client import HttpResult
from dispatcher.models import (
    AuthType, Capture, ContentType, CustomParameter, Delivery, DeliverySource, EntityParameter, Method, Webhook,
    WebhookHeader,
)
from dispatcher.rendering.merge import OnRelated, Unsupported, schema_for
from dispatcher.rendering.request import MASK, RenderedRequest, webhook_render_request
from dispatcher.sending import send_auth_for, send_now, tls_problem
from dispatcher.rendering.template import Slot, merge_fields_in, template_compile
from dispatcher.usage import usage_count
from dispatcher.models.webhooks import HEADERS_MAX
from dispatcher.validators import validate_header_name, validate_header_value, validate_parameter_name
from dispatcher.xml import safe_parser

ENTITY_FIELDS_MAX = 10  # seed 003: data of at most 10 CRM fields per webhook
ENTITY_PARAMETERS_MAX_LENGTH = 3_000  # seed 003: entity parameters, 3000 characters in all
RELATED_MODULES_MAX = 5  # seed 004: five related modules per webhook


@dataclass(frozen=True)
class Parameter:
    name: str
    value: str


def webhook_check(
    *, webhook: Webhook, entity_parameters: list[Parameter], custom_parameter_names: list[str]
) -> dict[str, list[str]]:
    """Rules that involve more than one field of a webhook; returns messages keyed by the field to blame."""
    errors = webhook_check_definition(webhook=webhook)
    if "module" not in errors:
        for key, messages in webhook_check_parameters(
            webhook=webhook, entity_parameters=entity_parameters, custom_parameter_names=custom_parameter_names
        ).items():
            errors.setdefault(key, []).extend(messages)
    return errors


def webhook_check_definition(*, webhook: Webhook) -> dict[str, list[str]]:
    """Module, edition, authorization and body rules of the webhook itself."""
    errors: dict[str, list[str]] = defaultdict(list)
    module, organization = webhook.module, webhook.organization
    if module.organization_id != organization.pk:
        errors["module"].append(f"The module {module.api_name} belongs to another organization.")
    if not module.supports_webhooks:
        errors["module"].append(f"Webhooks cannot be set up for {module.api_name} (not for Call logs and Notes).")
    if not organization.edition.webhooks_enabled:
        errors["organization"].append(
            f"The {organization.edition.name} of {organization.name} does not include webhooks; upgrade the edition."
        )
    if webhook.auth_type == AuthType.BASIC:
        if not webhook.auth_username:
            errors["auth_username"].append("Enter the user name for Basic authentication.")
        if not webhook.auth_password:
            errors["auth_password"].append("Enter the password for Basic authentication.")
    elif webhook.auth_type == AuthType.BEARER and not webhook.auth_token:
        errors["auth_token"].append("Enter the bearer token.")
    elif webhook.auth_type == AuthType.OAUTH2:
        for key, what in (("oauth_token_url", "token URL"), ("oauth_client_id", "client id"),
                          ("oauth_client_secret", "client secret")):
            if not getattr(webhook, key):
                errors[key].append(f"Enter the {what} for OAuth 2.0 client credentials.")
    if problem := tls_problem(certificate=webhook.tls_client_certificate, key=webhook.tls_client_key,
                              ca_bundle=webhook.tls_ca_bundle):
        errors[problem[0]].append(problem[1])
    if webhook.body:
        if webhook.method == Method.GET:
            errors["body"].append("A GET request has no body: choose POST or PUT, or leave the body empty.")
        elif webhook.content_type == ContentType.FORM:
            errors["body"].append("A user-defined body is JSON or XML: choose content type JSON, JSON array or XML.")
        elif syntax := body_syntax_error(webhook.body, webhook.content_type):
            errors["body"].append(syntax)
    return dict(errors)


def webhook_check_parameters(
    *, webhook: Webhook, entity_parameters: list[Parameter], custom_parameter_names: list[str]
) -> dict[str, list[str]]:
    """Limits and structure of the parameters, seen together with the method, content type and body."""
    errors: dict[str, list[str]] = defaultdict(list)
    length = sum(len(p.name) + len(p.value) for p in entity_parameters)
    if length > ENTITY_PARAMETERS_MAX_LENGTH:
        errors["entity_parameters"].append(
            f"Entity parameters may have at most {ENTITY_PARAMETERS_MAX_LENGTH} characters in all (names and "
            f"values); these have {length}."
        )
    fields = {f for p in entity_parameters for f in merge_fields_in(p.value)} | set(merge_fields_in(webhook.body))
    if len(fields) > ENTITY_FIELDS_MAX:
        errors["entity_parameters"].append(
            f"A webhook can send at most {ENTITY_FIELDS_MAX} CRM fields; this one uses {len(fields)}: "
            + ", ".join(sorted(map(str, fields))) + "."
        )
    names = [p.name for p in entity_parameters]
    for name in sorted({n for n in names + custom_parameter_names if (names + custom_parameter_names).count(n) > 1}):
        errors["entity_parameters"].append(f"The parameter name “{name}” is used more than once.")
    _check_structure(webhook, entity_parameters, custom_parameter_names, errors)
    return dict(errors)


def _check_structure(
    webhook: Webhook, entity: list[Parameter], custom_names: list[str], errors: dict[str, list[str]]
) -> None:
    """Related-module arrays and dotted names must give one unambiguous document."""
    schema = schema_for(webhook.module)
    flat = webhook.method == Method.GET or bool(webhook.body) or webhook.content_type == ContentType.FORM
    scalar_paths: list[tuple[str, ...]] = [tuple(name.split(".")) for name in custom_names]
    arrays: dict[str, int] = {}  # array key -> lookup field id of the related module
    problems = errors["entity_parameters"]
    for parameter in entity:
        vias = {b.via for b in map(schema.bind, merge_fields_in(parameter.value)) if isinstance(b, OnRelated)}
        if not vias:
            scalar_paths.append(tuple(parameter.name.split(".")))
        elif problem := _related_problem(webhook, parameter, vias, arrays):
            problems.append(problem)
    if len(set(arrays.values())) > RELATED_MODULES_MAX:
        problems.append(f"A webhook can send at most {RELATED_MODULES_MAX} related modules.")
    if not flat:
        problems.extend(_nesting_problems(arrays, scalar_paths))


def _related_problem(webhook: Webhook, parameter: Parameter, vias: set, arrays: dict[str, int]) -> str | None:
    """A parameter on a related module becomes an array; why it cannot, or None (and the array is noted)."""
    if len(vias) > 1:
        modules = " and ".join(sorted(v.module.api_name for v in vias))
        return f"The parameter “{parameter.name}” mixes fields of {modules}; use one related module per parameter."
    if webhook.method == Method.GET or webhook.body:
        return (f"The parameter “{parameter.name}” uses a related module: related modules are sent as arrays, "
                "which needs POST or PUT without a user-defined body.")
    key = parameter.name.split(".")[0]
    via = next(iter(vias))
    if arrays.setdefault(key, via.pk) != via.pk:
        return f"The array “{key}” would hold records of two related modules."
    return None


def _nesting_problems(arrays: dict[str, int], scalar_paths: list[tuple[str, ...]]) -> list[str]:
    """Dotted names nest into objects: a name cannot be both a value (or an array) and a parent."""
    problems = [f"“{key}” is both an array of related records and another parameter."
                for key in arrays if any(path[0] == key for path in scalar_paths)]
    for path in scalar_paths:
        problems += [f"“{'.'.join(path)}” is both a value and the parent of “{'.'.join(other)}”."
                     for other in scalar_paths if len(other) > len(path) and other[: len(path)] == path]
    return problems


def body_syntax_error(body: str, content_type: str) -> str | None:
    """Render the body with sample values and parse it: a typo shows when saving, not at 3 a.m."""
    if content_type in (ContentType.JSON, ContentType.JSONARRAY):
        template = template_compile(body, json_context=True)
        # Samples as long as the merge field they replace, so line and column point into the admin's text.
        sample = "".join(
            part if isinstance(part, str)
            else "x" * len(str(part.field)) if part.in_json_string
            else '"' + "x" * (len(str(part.field)) - 2) + '"'
            for part in template.parts
        )
        try:
            json.loads(sample)
        except json.JSONDecodeError as error:
            return f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        return None
    template = template_compile(body)
    sample = "".join(part if isinstance(part, str) else "x" * len(str(part.field)) for part in template.parts)
    try:
        etree.fromstring(sample.encode(), parser=safe_parser())
    except etree.XMLSyntaxError as error:
        return f"The body is not well-formed XML: {error.msg}."
    return None


@dataclass(frozen=True)
class Header:
    name: str
    value: str
    secret: bool = False


def webhook_check_headers(*, webhook: Webhook, headers: list[Header]) -> list[str]:
    """Custom headers seen together: how many, no name twice, and no Authorization beside the webhook's own."""
    problems = []
    if len(headers) > HEADERS_MAX:
        problems.append(f"A webhook can send at most {HEADERS_MAX} custom headers; these are {len(headers)}.")
    names = [h.name.lower() for h in headers]
    for header in headers:
        try:
            validate_header_name(header.name)
            validate_header_value(header.value)
        except ValidationError as error:
            problems.extend(f"{header.name}: {message}" for message in error.messages)
        if not header.value:
            problems.append(f"The header {header.name} needs a value.")
        if header.name.lower() == "authorization" and webhook.auth_type != AuthType.NONE:
            problems.append("The Authorization header comes from the webhook's authorization; remove the custom one "
                            "or choose “No authentication”.")
    problems.extend(f"The header {name} is given more than once." for name in sorted({n for n in names
                                                                                     if names.count(n) > 1}))
    return problems


def webhook_unsupported_merge_fields(*, webhook: Webhook) -> list[tuple[str, str]]:
    """Merge fields that will render as ${Unsupported_Field}, with the reason, for the admin's warning."""
    schema = schema_for(webhook.module)
    texts = [p.value for p in webhook.entity_parameters.all()] + [webhook.body] + [
        h.value for h in webhook.headers.all() if not h.is_secret]
    found: dict[str, str] = {}
    for text in texts:
        for part in template_compile(text).parts:
            if isinstance(part, Slot) and isinstance(binding := schema.bind(part.field), Unsupported):
                found.setdefault(str(part.field), binding.reason)
    return sorted(found.items())


# Secret fields of a webhook: how they are named to a person, and the URL field whose host they belong to.
WEBHOOK_SECRETS = {
    "auth_password": ("the Basic password", "url"),
    "auth_token": ("the bearer token", "url"),
    "oauth_client_secret": ("the OAuth client secret", "oauth_token_url"),
    "tls_client_key": ("the client certificate's key", "url"),
}


def webhook_unused_secrets(*, auth_type: str | None, certificate: str) -> set[str]:
    """Secret fields the configuration does not use: they are cleared rather than kept unseen."""
    secret_of: dict[str, str] = {AuthType.BASIC: "auth_password", AuthType.BEARER: "auth_token",
                                 AuthType.OAUTH2: "oauth_client_secret"}
    used = secret_of.get(auth_type or "")
    unused = {"auth_password", "auth_token", "oauth_client_secret"} - {used}
    return unused | ({"tls_client_key"} if not certificate else set())


def url_origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port: what a secret is entered for."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return "", url, None
    return parts.scheme, (parts.hostname or "").rstrip(".").lower(), port


def webhook_retarget_problem(*, stored_url: str, url: str, kept: list[str]) -> str | None:
    """Secrets go only to the origin they were entered for: a URL moved to another scheme, host or port
    needs every secret it keeps entered again (the admin form and import_config both ask)."""
    before, after = url_origin(stored_url), url_origin(url)
    if not kept or before == after:
        return None
    return (f"The URL now goes to {after[0]}://{after[1]}:{after[2]} instead of {before[0]}://{before[1]}:{before[2]}: "
            f"enter {', '.join(kept)} again. Secrets are only sent to the host they were entered for.")


def webhook_preview(*, webhook: Webhook, record: Record, show_signature: bool = False) -> RenderedRequest:
    """The request for this record with secrets masked: what admins and the CLI may see. The signature is
    shown only to people who may change the webhook (show_signature)."""
    _check_record(webhook, record)
    request = webhook_render_request(webhook=webhook, record=record, message_id=f"msg_preview_{record.pk}")
    if webhook.auth_type == AuthType.OAUTH2:  # the token is fetched at send time
        request = dataclasses.replace(request, headers={**request.headers, "Authorization": f"Bearer {MASK}"})
    return request.masked(keep_signature=show_signature)


def webhook_send_test(*, webhook: Webhook, record: Record, by: str = "") -> tuple[RenderedRequest, HttpResult, Delivery]:
    """Send the real request once through the guarded client, and log it as a delivery of source "Test";
    returns what was sent and the result, both with the secrets masked (a receiver may echo the request),
    and the logged delivery."""
    _check_record(webhook, record)
    public_id = uuid.uuid4()
    request = webhook_render_request(webhook=webhook, record=record, message_id=f"msg_{public_id.hex}")
    started = timezone.now()
    result, request = send_now(request, send_auth_for(webhook))
    logged = delivery_log_test(webhook=webhook, record=record, request=request, result=result, started_at=started,
                               by=by, public_id=public_id)
    usage_count(organization=webhook.organization, now=timezone.now(), source=DeliverySource.TEST,
                outcome=logged.status, duration_ms=result.duration_ms if result.status_code is not None else None)
    shown = dataclasses.replace(result, body=request.mask(result.body.decode("utf-8", "replace")).encode(),
                                headers={name: request.mask(value) for name, value in result.headers.items()})
    return request.masked(keep_signature=True), shown, logged


def _check_record(webhook: Webhook, record: Record) -> None:
    if record.module_id != webhook.module_id:
        raise ValidationError(
            f"Record #{record.pk} is a {record.module.api_name} record; this webhook is for {webhook.module.api_name}."
        )


@transaction.atomic
def webhook_save(
    *, webhook: Webhook, entity_parameters: list[Parameter], custom_parameters: list[Parameter],
    captures: list[Capture] | None = None, headers: list[Header] | None = None,
) -> Webhook:
    """Validate and store a webhook with its parameters, response captures and custom headers (the admin and
    the import both save through here). captures=None and headers=None leave the stored ones as they are."""
    errors = _save_problems(webhook, entity_parameters, custom_parameters, captures, headers)
    if errors:
        raise ValidationError(errors)
    webhook.save()
    if headers is not None:
        webhook.headers.all().delete()
        for position, header in enumerate(headers):
            WebhookHeader.objects.create(webhook=webhook, name=header.name, value=header.value,
                                         is_secret=header.secret, position=position)
    if captures is not None:
        webhook.captures.all().delete()
        for position, capture in enumerate(captures):
            capture.webhook, capture.position = webhook, position
        Capture.objects.bulk_create(captures)
    webhook.entity_parameters.all().delete()
    webhook.custom_parameters.all().delete()
    EntityParameter.objects.bulk_create(
        EntityParameter(webhook=webhook, name=p.name, value=p.value, position=i) for i, p in enumerate(entity_parameters)
    )
    for i, p in enumerate(custom_parameters):
        CustomParameter.objects.create(webhook=webhook, name=p.name, value=p.value, position=i)
    return webhook


def _save_problems(webhook: Webhook, entity_parameters: list[Parameter], custom_parameters: list[Parameter],
                   captures: list[Capture] | None, headers: list[Header] | None) -> dict[str, list[str]]:
    """Every problem of the webhook as saved, per form field; the checks that need a valid definition run
    only once it is one."""
    errors: dict[str, list[str]] = defaultdict(list)
    try:
        webhook.full_clean(validate_unique=True)
    except ValidationError as error:
        for key, messages in error.message_dict.items():
            errors[key].extend(messages)
    if not errors:
        names = [p.name for p in custom_parameters]
        for key, messages in webhook_check(
            webhook=webhook, entity_parameters=entity_parameters, custom_parameter_names=names
        ).items():
            errors[key].extend(messages)
    for kind, parameters in (("entity_parameters", entity_parameters), ("custom_parameters", custom_parameters)):
        errors[kind].extend(_parameter_problems(parameters))
    if captures is not None and "module" not in errors and (problems := captures_check(webhook=webhook,
                                                                                      captures=captures)):
        errors["captures"] = problems
    if headers is not None and "auth_type" not in errors and (problems := webhook_check_headers(webhook=webhook,
                                                                                             headers=headers)):
        errors["headers"] = problems
    return {key: messages for key, messages in errors.items() if messages}


def _parameter_problems(parameters: list[Parameter]) -> list[str]:
    problems = []
    for parameter in parameters:
        try:
            validate_parameter_name(parameter.name)
        except ValidationError as error:
            problems.extend(error.messages)
        if not parameter.value:
            problems.append(f"The parameter “{parameter.name}” needs a value.")
    return problems
