"""Every rule of a webhook definition (seed 003 and 004 limits), with the message an admin sees."""
import pytest
from django.core.exceptions import ValidationError

from crm import services as crm_services
from crm.models import Edition, Field, FieldType
from dispatcher.models import Webhook
from tests.factories import OrganizationFactory, webhook_create


def errors_of(**attributes) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        webhook_create(**attributes)
    assert not Webhook.objects.filter(name=attributes.get("name", "Test hook")).exists()
    return caught.value.message_dict


@pytest.mark.parametrize(("name", "message"), [
    ("Sync deals; drop table", "Use letters, digits, spaces, hyphens and underscores only in the name."),
    ("x" * 101, "Ensure this value has at most 100 characters (it has 101)."),
    ("   ", "Use letters, digits, spaces, hyphens and underscores only in the name."),
])
def test_name_rules(modules, name, message):
    assert message in errors_of(module=modules["Deals"], name=name)["name"]


def test_name_may_have_letters_digits_spaces_hyphens_underscores_and_accents(modules):
    assert webhook_create(module=modules["Deals"], name="Zoho Books - facturen_2026 é").pk


def test_names_are_unique_per_organization(modules):
    webhook_create(module=modules["Deals"], name="Books")
    with pytest.raises(ValidationError) as caught:
        webhook_create(module=modules["Deals"], name="Books")
    assert caught.value.message_dict["__all__"] == ["Webhook with this Organization and Name already exists."]
    other = OrganizationFactory()
    assert webhook_create(module=other.modules.get(api_name="Deals"), name="Books").pk


def test_description_has_at_most_200_characters(modules):
    assert errors_of(module=modules["Deals"], description="d" * 201)["description"] == [
        "Ensure this value has at most 200 characters (it has 201)."]


@pytest.mark.parametrize(("url", "message"), [
    ("https://example.com/" + "p" * 181, "Ensure this value has at most 200 characters (it has 201)."),
    ("ftp://example.com/hook", "The URL must start with http:// or https://."),
    ("example.com/hook", "The URL must start with http:// or https://."),
    ("https://user:pw@example.com/hook", "Do not put a user name or password in the URL; use Basic authentication or a custom parameter."),
    ("https://example.com:8443/hook", "Port 8443 is not allowed; webhooks may only use ports 80, 443."),
    ("http://example.com:99999/", "This is not a valid URL (check the port number)."),
    ("https:///hook", "The URL has no host name."),
    ("https://example.com/a b", "The URL must not contain spaces; encode them as %20."),
    ("https://example.com/hook#top", "The URL must not contain a #fragment; it is never sent."),
    ("http://10.1.2.3/hook", "The address 10.1.2.3 is private, loopback, link-local or reserved; webhooks can only reach public addresses."),
    ("http://169.254.169.254/latest/meta-data", "The address 169.254.169.254 is private, loopback, link-local or reserved; webhooks can only reach public addresses."),
    ("http://127.0.0.1/hook", "The address 127.0.0.1 is private, loopback, link-local or reserved; webhooks can only reach public addresses."),
    ("http://[::ffff:192.168.0.1]/", "The address ::ffff:192.168.0.1 is private, loopback, link-local or reserved; webhooks can only reach public addresses."),
])
def test_url_rules(modules, url, message):
    assert message in errors_of(module=modules["Deals"], url=url)["url"]


def test_ports_80_and_443_are_allowed_and_a_setting_allows_more(modules, settings):
    webhook_create(module=modules["Deals"], name="a", url="http://example.com:80/x")
    webhook_create(module=modules["Deals"], name="b", url="https://example.com:443/x")
    settings.WEBHOOK_ALLOWED_PORTS = [80, 443, 8443]
    assert webhook_create(module=modules["Deals"], name="c", url="https://example.com:8443/x").pk


@pytest.mark.parametrize("module", ["Notes", "Calls"])
def test_call_logs_and_notes_cannot_have_webhooks(modules, module):
    assert errors_of(module=modules[module])["module"] == [
        f"Webhooks cannot be set up for {module} (not for Call logs and Notes)."]


def test_module_must_belong_to_the_webhook_organization(modules):
    other = OrganizationFactory()
    messages = errors_of(module=modules["Deals"], organization=other)["module"]
    assert messages == ["The module Deals belongs to another organization."]


def test_edition_without_webhooks_refuses_them(organization, modules):
    organization.edition = Edition.objects.get(code="free")
    organization.save()
    assert errors_of(module=modules["Deals"])["organization"] == [
        f"The Free Edition of {organization.name} does not include webhooks; upgrade the edition."]


def test_basic_auth_needs_user_name_and_password(modules):
    errors = errors_of(module=modules["Deals"], auth_type="basic")
    assert errors["auth_username"] == ["Enter the user name for Basic authentication."]
    assert errors["auth_password"] == ["Enter the password for Basic authentication."]


@pytest.mark.parametrize(("attributes", "message"), [
    ({"method": "GET", "body": '{"a": 1}'}, "A GET request has no body: choose POST or PUT, or leave the body empty."),
    ({"content_type": "FORM", "body": "a=b"}, "A user-defined body is JSON or XML: choose content type JSON, JSON array or XML."),
    ({"body": '{"a": "${Deals.Amount}",}'}, "The body is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 25)."),
    ({"content_type": "XML", "body": "<a><b>${Deals.Amount}</a>"}, "The body is not well-formed XML: Opening and ending tag mismatch: b line 1 and a, line 1, column 26."),
    ({"body": '{"a": "' + "x" * 10_000 + '"}'}, "The body may have at most 10000 characters (it has 10009)."),
])
def test_body_rules(modules, attributes, message):
    assert message in errors_of(module=modules["Deals"], **attributes)["body"]


def test_body_may_hold_merge_fields_outside_quotes(modules):
    assert webhook_create(module=modules["Deals"], body='{"amount": ${Deals.Amount}, "n": [${Deals.Deal Id}]}').pk


def test_at_most_ten_crm_fields(modules):
    labels = ["Deal Name", "Amount", "Closing Date", "Stage", "Type", "Probability (%)", "Payment Due Date",
              "Deal Id", "Deal Owner", "Created Time", "Modified Time"]
    entity = [(f"p{i}", f"${{Deals.{label}}}") for i, label in enumerate(labels)]
    assert webhook_create(module=modules["Deals"], name="ten", entity=entity[:10]).pk
    [message] = errors_of(module=modules["Deals"], entity=entity)["entity_parameters"]
    assert message.startswith("A webhook can send at most 10 CRM fields; this one uses 11: ${Deals.Amount}, ")


def test_the_same_field_twice_counts_once_and_body_fields_count_too(modules):
    entity = [(f"p{i}", "${Deals.Amount}") for i in range(12)]
    assert webhook_create(module=modules["Deals"], name="same", entity=entity).pk
    labels = ["Deal Name", "Closing Date", "Stage", "Type", "Probability (%)", "Payment Due Date",
              "Deal Id", "Deal Owner", "Created Time", "Modified Time"]
    body = "{" + ", ".join(f'"{i}": "${{Deals.{label}}}"' for i, label in enumerate(labels)) + "}"
    messages = errors_of(module=modules["Deals"], body=body, entity=entity)["entity_parameters"]
    assert messages[0].startswith("A webhook can send at most 10 CRM fields; this one uses 11")


def test_entity_parameters_have_at_most_3000_characters_in_all(modules):
    entity = [("a", "x" * 1499), ("b", "y" * 1499)]
    assert webhook_create(module=modules["Deals"], name="fits", entity=entity).pk
    assert errors_of(module=modules["Deals"], entity=entity + [("c", "z")])["entity_parameters"] == [
        "Entity parameters may have at most 3000 characters in all (names and values); these have 3002."]


def test_parameter_names_are_unique_across_entity_and_custom(modules):
    errors = errors_of(module=modules["Deals"], entity=[("token", "${Deals.Amount}")], custom=[("token", "abc")])
    assert errors["entity_parameters"] == ["The parameter name “token” is used more than once."]


@pytest.mark.parametrize("name", ["1st", "has space", "a..b", "a.", "-x", "é"])
def test_parameter_names_must_be_simple(modules, name):
    errors = errors_of(module=modules["Deals"], entity=[(name, "${Deals.Amount}")])
    assert errors["entity_parameters"][0].startswith(f"“{name}” is not a valid parameter name")


def test_custom_parameter_needs_a_value(modules):
    assert errors_of(module=modules["Deals"], custom=[("token", "")])["custom_parameters"] == [
        "The parameter “token” needs a value."]


def test_a_name_cannot_be_both_a_value_and_a_parent(modules):
    errors = errors_of(module=modules["Deals"], entity=[("customer", "${Deals.Amount}"), ("customer.name", "x")])
    assert errors["entity_parameters"] == ["“customer” is both a value and the parent of “customer.name”."]


def test_dotted_names_are_literal_in_flat_encodings(modules):
    entity = [("customer", "${Deals.Amount}"), ("customer.name", "x")]
    assert webhook_create(module=modules["Deals"], content_type="FORM", entity=entity).pk


def test_related_modules_need_post_or_put_without_a_body(modules):
    entity = [("deals.name", "${Deals.Deal Name}")]
    message = ("The parameter “deals.name” uses a related module: related modules are sent as arrays, "
               "which needs POST or PUT without a user-defined body.")
    assert errors_of(module=modules["Contacts"], method="GET", entity=entity)["entity_parameters"] == [message]
    assert errors_of(module=modules["Contacts"], body='{"a": 1}', entity=entity)["entity_parameters"] == [message]


def test_one_parameter_uses_one_related_module(modules):
    entity = [("x", "${Deals.Deal Name} ${Contacts.Last Name}")]
    assert errors_of(module=modules["Accounts"], entity=entity)["entity_parameters"] == [
        "The parameter “x” mixes fields of Contacts and Deals; use one related module per parameter."]


def test_at_most_five_related_modules(organization, modules):
    entity = []
    for index in range(6):
        module = crm_services.module_create(organization=organization, api_name=f"Custom{index}",
                                            singular_label=f"Custom {index}")
        Field.objects.create(module=module, label="Account", api_name="Account", field_type=FieldType.LOOKUP,
                             lookup_module=modules["Accounts"])
        entity.append((f"c{index}.id", f"${{Custom{index}.Custom {index} Id}}"))
    assert webhook_create(module=modules["Accounts"], name="five", entity=entity[:5]).pk
    assert errors_of(module=modules["Accounts"], entity=entity)["entity_parameters"] == [
        "A webhook can send at most 5 related modules."]
