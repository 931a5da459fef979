"""Webhook definitions: the checks that span several fields, previews, test sends, secret rotation."""
import base64
import binascii
import dataclasses
import datetime
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.utils import timezone
from lxml import etree

from crm.models import Record
from dispatcher.capture.apply import captures_check
from dispatcher.delivery import delivery_log_test
from dispatcher.transport.result import HttpResult
from dispatcher.models import (
    AuthType, Capture, ContentType, CustomParameter, Delivery, DeliverySource, EntityParameter, Method, Webhook,
    WebhookHeader,
)
from dispatcher.rendering.merge import OnRelated, Unsupported, schema_for
from dispatcher.rendering.request import webhook_render_request
from dispatcher.transport.request import MASK, RenderedRequest
from dispatcher.rendering.request import send_auth_for
from dispatcher.transport.sending import send_now, tls_problem
from dispatcher.rendering.template import Slot, merge_fields_in, template_compile
from dispatcher.ops.usage import usage_count
from dispatcher.models.webhooks import HEADERS_MAX
from dispatcher.transport.signing import SECRET_PREFIX
from dispatcher.transport.addresses import url_parse
from dispatcher.rendering.xml import safe_parser

ENTITY_FIELDS_MAX = 10  # seed 003: data of at most 10 CRM fields per webhook
ENTITY_PARAMETERS_MAX_LENGTH = 3_000  # seed 003: entity parameters, 3000 characters in all
RELATED_MODULES_MAX = 5  # seed 004: five related modules per webhook


@dataclass(frozen=True)
class Parameter:
    name: str
    value: str


def webhook_check(
    *, webhook: Webhook, entity_parameters: list[Parameter], custom_parameter_names: list[str],
    schema_version: uuid.UUID | None = None,
) -> dict[str, list[str]]:
    """Rules that involve more than one field of a webhook; returns messages keyed by the field to blame."""
    errors = webhook_check_definition(webhook=webhook)
    if "module" not in errors:
        for key, messages in webhook_check_parameters(
            webhook=webhook, entity_parameters=entity_parameters, custom_parameter_names=custom_parameter_names,
            schema_version=schema_version,
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
    *, webhook: Webhook, entity_parameters: list[Parameter], custom_parameter_names: list[str],
    schema_version: uuid.UUID | None = None,
) -> dict[str, list[str]]:
    """Limits and structure of the parameters, seen together with the method, content type and body.
    schema_version: the organization's, when the caller has just loaded it (else it costs a query)."""
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
    for name in _repeated([p.name for p in entity_parameters] + custom_parameter_names):
        errors["entity_parameters"].append(f"The parameter name “{name}” is used more than once.")
    _check_structure(webhook, entity_parameters, custom_parameter_names, errors, schema_version)
    return dict(errors)


def _check_structure(
    webhook: Webhook, entity: list[Parameter], custom_names: list[str], errors: dict[str, list[str]],
    schema_version: uuid.UUID | None,
) -> None:
    """Related-module arrays and dotted names must give one unambiguous document."""
    schema = schema_for(webhook.module, version=schema_version)
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
    for header in headers:
        # The model's own field validation (name rules, no line breaks, at most 2,000 characters), as the
        # admin's inline form runs it, so that an import cannot store what the admin refuses.
        row = WebhookHeader(name=header.name, value=header.value, is_secret=header.secret)
        problems.extend(f"{header.name}: {message}" for _, message in row_problems(row, exclude=["webhook"]))
        if not header.value:
            problems.append(f"The header {header.name} needs a value.")
        if header.name.lower() == "authorization" and webhook.auth_type != AuthType.NONE:
            problems.append("The Authorization header comes from the webhook's authorization; remove the custom one "
                            "or choose “No authentication”.")
    problems.extend(f"The header {name} is given more than once." for name in _repeated(h.name.lower()
                                                                                       for h in headers))
    return problems


def row_problems(row: models.Model, *, exclude: list[str]) -> list[tuple[str, str]]:
    """A row's model validation (full_clean) without the database, as (field, message): its fields'
    validators, lengths and choices. Uniqueness is the caller's (names given twice); an empty value is too,
    with a message of its own."""
    try:
        row.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        return [(name, message) for name, errors in error.error_dict.items() for item in errors
                if item.code != "blank" for message in item.messages]
    return []


def _repeated(names: Iterable[str]) -> list[str]:
    """Names given more than once, sorted (counted once: a webhook may list thousands in a file)."""
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in names:
        (repeated if name in seen else seen).add(name)
    return sorted(repeated)


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


# Secret fields of a webhook: how they are named to a person, and the URL fields whose hosts they belong to.
# The OAuth client secret belongs to both: it is sent to the token URL, and the access token it buys is sent
# to the webhook's URL, so moving either asks for it again.
WEBHOOK_SECRETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "auth_password": ("the Basic password", ("url",)),
    "auth_token": ("the bearer token", ("url",)),
    "oauth_client_secret": ("the OAuth client secret", ("oauth_token_url", "url")),
    "tls_client_key": ("the client certificate's key", ("url",)),
}


def webhook_unused_secrets(*, auth_type: str | None, certificate: str) -> set[str]:
    """Secret fields the configuration does not use: they are cleared rather than kept unseen."""
    secret_of: dict[str, str] = {AuthType.BASIC: "auth_password", AuthType.BEARER: "auth_token",
                                 AuthType.OAUTH2: "oauth_client_secret"}
    used = secret_of.get(auth_type or "")
    unused = {"auth_password", "auth_token", "oauth_client_secret"} - {used}
    return unused | ({"tls_client_key"} if not certificate else set())


def url_origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of the normalised URL (validators.url_parse): what a secret is entered for, so
    a lookalike spelling of a host is the host it reads as."""
    try:
        parts = url_parse(url)
    except ValidationError:
        return "", url, None
    return parts.scheme, (parts.raw_host or "").rstrip(".").lower(), parts.port


def webhook_retarget_problem(*, stored_url: str, url: str, kept: list[str]) -> str | None:
    """Secrets go only to the origin they were entered for: a URL moved to another scheme, host or port
    needs every secret it keeps entered again (the admin form and import_config both ask)."""
    before, after = url_origin(stored_url), url_origin(url)
    if not kept or before == after:
        return None
    return (f"The URL now goes to {after[0]}://{after[1]}:{after[2]} instead of {before[0]}://{before[1]}:{before[2]}: "
            f"enter {', '.join(kept)} again. Secrets are only sent to the host they were entered for.")


def webhook_secret_retarget_problem(*, name: str, stored: Webhook, urls: dict[str, Any]) -> str | None:
    """Why the stored secret `name` may not be kept with these URLs (a host it belongs to moved), or None."""
    what, origin_fields = WEBHOOK_SECRETS[name]
    return next((problem for field in origin_fields if (problem := webhook_retarget_problem(
        stored_url=getattr(stored, field), url=urls.get(field) or "", kept=[what]))), None)


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
    """Validate and store a webhook with its parameters, response captures and custom headers (the admin
    saves through here; the import validates with the same webhook_problems and stores in bulk).
    captures=None and headers=None leave the stored ones as they are."""
    errors = webhook_problems(webhook=webhook, entity_parameters=entity_parameters,
                              custom_parameters=custom_parameters, captures=captures, headers=headers)
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


# What full_clean looks up in the database; a caller that loaded these itself (the import: one query per kind
# for a whole file) and knows the name is unique says references_loaded, and the rest runs in memory.
REFERENCES = ["organization", "module", "retry_policy"]


def webhook_problems(
    *, webhook: Webhook, entity_parameters: list[Parameter], custom_parameters: list[Parameter],
    captures: list[Capture] | None = None, headers: list[Header] | None = None, references_loaded: bool = False,
    signing_given: bool = False,
) -> dict[str, list[str]]:
    """Every problem of the webhook as it would be saved, per field: the one validation of the admin, the
    configuration import and the API (model validation of the webhook and of each of its rows, the checks
    that span fields). The checks that need a valid definition run only once it is one.

    signing_given: the caller set the signing secrets from outside (an imported file) rather than leaving
    them as generated and rotated here; they are checked as a rotation leaves them."""
    errors: dict[str, list[str]] = defaultdict(list)
    try:
        webhook.full_clean(exclude=REFERENCES if references_loaded else None, validate_unique=not references_loaded,
                           validate_constraints=not references_loaded)
    except ValidationError as error:
        for key, messages in error.message_dict.items():
            errors[key].extend(messages)
    for key, message in webhook_check_signing(webhook=webhook, now=timezone.now()) if signing_given else ():
        errors[key].append(message)
    if not errors:
        names = [p.name for p in custom_parameters]
        # A caller that loaded the organizations for this check (references_loaded) has their schema_version.
        version = webhook.organization.schema_version if references_loaded else None
        for key, messages in webhook_check(
            webhook=webhook, entity_parameters=entity_parameters, custom_parameter_names=names, schema_version=version
        ).items():
            errors[key].extend(messages)
    errors["entity_parameters"].extend(_parameter_problems(EntityParameter, entity_parameters))
    errors["custom_parameters"].extend(_parameter_problems(CustomParameter, custom_parameters))
    if captures is not None and "module" not in errors:
        errors["captures"].extend(f"{name}: {message}" for capture in captures
                                  for name, message in row_problems(capture, exclude=["webhook", "field"]))
        errors["captures"].extend(captures_check(webhook=webhook, captures=captures))
    if headers is not None and "auth_type" not in errors and (problems := webhook_check_headers(webhook=webhook,
                                                                                             headers=headers)):
        errors["headers"] = problems
    return {key: messages for key, messages in errors.items() if messages}


def _parameter_problems(model: type[EntityParameter] | type[CustomParameter], parameters: list[Parameter]) -> list[str]:
    """Each parameter's model validation (name rules, value length), as the admin's inline form runs it."""
    problems: list[str] = []
    for parameter in parameters:
        found = row_problems(model(name=parameter.name, value=parameter.value), exclude=["webhook"])
        problems.extend(message if name == "name" else f"The value of “{parameter.name}”: {message}"
                        for name, message in found)
        if not parameter.value:
            problems.append(f"The parameter “{parameter.name}” needs a value.")
    return problems


SIGNING_SECRET_BYTES = (24, 64)  # Standard Webhooks: a secret of 24 to 64 random bytes, base64 after "whsec_"


def signing_secret_problem(secret: str) -> str | None:
    """Why a signing secret cannot sign (a receiver could not verify it), or None. Never repeats the secret."""
    least, most = SIGNING_SECRET_BYTES
    expected = (f"a signing secret is “{SECRET_PREFIX}” followed by {least} to {most} random bytes in base64, as "
                "“Rotate signing secret” makes them")
    if not secret.startswith(SECRET_PREFIX):
        return f"This is not a signing secret: {expected}."
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return f"This is not base64 after “{SECRET_PREFIX}”: {expected}."
    if not least <= len(key) <= most:
        return f"This secret has {len(key)} bytes: {expected}."
    return None


def webhook_check_signing(*, webhook: Webhook, now: datetime.datetime) -> list[tuple[str, str]]:
    """The signing secrets as a rotation leaves them: both well-formed, and the previous one signing for at
    most WEBHOOK_SECRET_GRACE_HOURS from now. (field, message) pairs."""
    problems = []
    if problem := signing_secret_problem(webhook.signing_secret):
        problems.append(("signing_secret", problem))
    if webhook.previous_signing_secret:
        if problem := signing_secret_problem(webhook.previous_signing_secret):
            problems.append(("previous_signing_secret", problem))
        expires, grace = webhook.previous_secret_expires_at, settings.WEBHOOK_SECRET_GRACE_HOURS
        if expires is None:
            problems.append(("previous_signing_secret", "The previous secret needs the time it stops signing."))
        elif expires > now + datetime.timedelta(hours=grace):
            problems.append(("previous_signing_secret",
                             f"The previous secret would sign until {expires:%Y-%m-%d %H:%M %Z}; after a rotation "
                             f"it signs for at most WEBHOOK_SECRET_GRACE_HOURS ({grace:g} h) from now."))
    return problems


@dataclass
class WebhookRows:
    """A webhook to store with the rows it owns (the import's plan): None leaves that kind as stored.
    fields: the webhook's own fields that differ from what is stored (a stored webhook only)."""

    webhook: Webhook
    fields: list[str] = dataclasses.field(default_factory=list)
    entity_parameters: list[Parameter] | None = None
    custom_parameters: list[Parameter] | None = None
    headers: list[Header] | None = None
    captures: list[Capture] | None = None


BULK_BATCH = 500  # rows per statement when storing an import: large files, statements of a sensible size


def webhooks_store(*, items: list[WebhookRows]) -> None:
    """Store webhooks that webhook_problems found valid (the configuration import; the admin saves one at a
    time with webhook_save): new webhooks and the rows of every kind that changed in one statement per batch
    of BULK_BATCH, a changed webhook's own fields in one UPDATE of just those fields (Django's bulk_update
    builds a CASE per field and row, which costs more than the rows it saves). Every webhook stored counts
    as modified, so workers load it again."""
    stored = {item.webhook.pk for item in items if item.webhook.pk is not None}  # only these have rows to replace
    Webhook.objects.bulk_create([item.webhook for item in items if item.webhook.pk is None], batch_size=BULK_BATCH)
    for item in items:
        if item.webhook.pk in stored:
            item.webhook.save(update_fields=[*item.fields, "modified_at"])
    for model, rows_of in _ROW_KINDS:
        given = [(item.webhook, rows) for item in items if (rows := rows_of(item)) is not None]
        _rows_delete(model, [webhook.pk for webhook, _ in given if webhook.pk in stored])
        model._default_manager.bulk_create([row for webhook, rows in given for row in rows], batch_size=BULK_BATCH)


def _entity_rows(item: WebhookRows) -> list[models.Model] | None:
    return None if item.entity_parameters is None else [
        EntityParameter(webhook=item.webhook, name=p.name, value=p.value, position=i)
        for i, p in enumerate(item.entity_parameters)]


def _custom_rows(item: WebhookRows) -> list[models.Model] | None:
    return None if item.custom_parameters is None else [
        CustomParameter(webhook=item.webhook, name=p.name, value=p.value, position=i)
        for i, p in enumerate(item.custom_parameters)]


def _header_rows(item: WebhookRows) -> list[models.Model] | None:
    return None if item.headers is None else [
        WebhookHeader(webhook=item.webhook, name=h.name, value=h.value, is_secret=h.secret, position=i)
        for i, h in enumerate(item.headers)]


def _capture_rows(item: WebhookRows) -> list[models.Model] | None:
    if item.captures is None:
        return None
    for position, capture in enumerate(item.captures):
        capture.webhook, capture.position = item.webhook, position
    return list(item.captures)


# Each kind of row a webhook owns, and how a plan gives it (None: keep the stored rows).
_ROW_KINDS: list[tuple[type[models.Model], Callable[[WebhookRows], list[models.Model] | None]]] = [
    (EntityParameter, _entity_rows), (CustomParameter, _custom_rows), (WebhookHeader, _header_rows),
    (Capture, _capture_rows),
]


def _rows_delete(model: type[models.Model], webhook_ids: list[int]) -> None:
    """Delete the rows of these webhooks with one statement per batch. Raw SQL on purpose: the ORM's delete
    loads every row to send post_delete, whose handler marks the webhook modified one row at a time, and
    webhooks_store has just set modified_at on every one of them."""
    quote = connection.ops.quote_name
    owner = cast(models.ForeignKey, model._meta.get_field("webhook"))  # every kind of row points to its webhook
    table, column = quote(model._meta.db_table), quote(owner.column)
    with connection.cursor() as cursor:
        for start in range(0, len(webhook_ids), BULK_BATCH):
            chunk = webhook_ids[start:start + BULK_BATCH]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({placeholders})", chunk)  # noqa: S608 - quoted identifiers, values as parameters
