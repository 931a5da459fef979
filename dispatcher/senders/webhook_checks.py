"""What makes a webhook valid: the checks that span several of its fields (module, edition, authorization,
body, parameters and their structure, custom headers), each row's model validation, and webhook_problems,
the one validation of the admin, the configuration import and the API. Also the admin's warning about merge
fields that will not render."""
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from lxml import etree

from dispatcher.capture.apply import captures_check
from dispatcher.models import (
    AuthType, Capture, ContentType, CustomParameter, EntityParameter, Method, Webhook, WebhookHeader,
)
from dispatcher.models.webhooks import HEADERS_MAX
from dispatcher.ops.quotas import webhooks_refusal
from dispatcher.rendering.merge import OnRelated, Unsupported, schema_for
from dispatcher.rendering.template import Slot, merge_fields_in, template_compile
from dispatcher.rendering.xml import safe_parser
from dispatcher.senders.webhook_rows import Header, Parameter
from dispatcher.senders.webhook_secrets import webhook_check_signing
from dispatcher.transport.sending import tls_problem

ENTITY_FIELDS_MAX = 10  # seed 003: data of at most 10 CRM fields per webhook
ENTITY_PARAMETERS_MAX_LENGTH = 3_000  # seed 003: entity parameters, 3000 characters in all
RELATED_MODULES_MAX = 5  # seed 004: five related modules per webhook


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
    if refusal := webhooks_refusal(organization):
        errors["organization"].append(refusal)
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

