import base64
import datetime
import json
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
from lxml import etree
from standardwebhooks.webhooks import Webhook as StandardWebhook

from crm import services as crm_services
from crm.models import Field
from dispatcher.senders import webhooks as services
from dispatcher.senders.webhook_checks import webhook_unsupported_merge_fields
from dispatcher.config_io.demo import demo_load
from dispatcher.models import ContentType, Method, Webhook
from dispatcher.rendering.request import webhook_render_request
from dispatcher.rendering.xml import safe_parser
from tests.factories import webhook_create

HOSTILE = 'He said "hi" <b>&amp;</b>\nline2 \\ tab\t é 日本 \'quote\''
NAME_WITH_CONTROL = "Acme\x01 & <Sons>"


@pytest.fixture
def deal(organization, owner, modules):
    account = crm_services.record_create(module=modules["Accounts"], owner=owner,
                                         values={"Account_Name": NAME_WITH_CONTROL.replace("\x01", "")})
    contact = crm_services.record_create(module=modules["Contacts"], owner=owner,
                                         values={"Last_Name": "O'Neil", "Account_Name": account.pk})
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={
        "Deal_Name": HOSTILE, "Amount": "12500.5", "Closing_Date": "2026-11-30", "Stage": "Closed Won",
        "Type": "New Business", "Account_Name": account.pk, "Contact_Name": contact.pk,
    })


def render(webhook: Webhook, record, message_id: str = "msg_1", timestamp: int = 1_700_000_000):
    webhook = Webhook.objects.select_related("organization", "module").get(pk=webhook.pk)
    return webhook_render_request(webhook=webhook, record=record, message_id=message_id, timestamp=timestamp)


ENTITY = [("name", "${Deals.Deal Name}"), ("customer", "${Accounts.Account Name}"),
          ("label", "Deal: ${Deals.Deal Name}!"), ("amount", "${Deals.Amount}")]


def test_json_parameters_survive_quotes_angle_brackets_and_newlines(modules, deal):
    hook = webhook_create(module=modules["Deals"], content_type=ContentType.JSON, entity=ENTITY)
    request = render(hook, deal)
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(request.body) == {
        "name": HOSTILE, "customer": "Acme & <Sons>", "label": f"Deal: {HOSTILE}!", "amount": "12500.50",
    }


def test_jsonarray_sends_the_parameters_as_an_array_of_one_object(modules, deal):
    hook = webhook_create(module=modules["Deals"], content_type=ContentType.JSONARRAY, entity=ENTITY[:1])
    assert json.loads(render(hook, deal).body) == [{"name": HOSTILE}]


def test_xml_parameters_make_a_well_formed_document(modules, deal):
    hook = webhook_create(module=modules["Deals"], content_type=ContentType.XML,
                          entity=ENTITY + [("customer_info.city", "${Organization.Name}")])
    request = render(hook, deal)
    assert request.headers["Content-Type"] == "application/xml; charset=utf-8"
    root = etree.fromstring(request.body, parser=safe_parser())
    assert root.tag == "request"
    assert root.findtext("name") == HOSTILE
    assert root.findtext("customer") == "Acme & <Sons>"
    assert root.findtext("customer_info/city") == deal.module.organization.name


def test_form_parameters_are_form_encoded(modules, deal):
    hook = webhook_create(module=modules["Deals"], content_type=ContentType.FORM, entity=ENTITY,
                          custom=[("token", "s3cr&t=1")])
    request = render(hook, deal)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(request.body.decode(), strict_parsing=True) == [
        ("name", HOSTILE), ("customer", "Acme & <Sons>"), ("label", f"Deal: {HOSTILE}!"), ("amount", "12500.50"),
        ("token", "s3cr&t=1"),
    ]


def test_get_puts_every_parameter_in_a_correctly_encoded_query_string(modules, deal):
    hook = webhook_create(module=modules["Deals"], method=Method.GET, url="https://crm.example.com/in?source=crm",
                          entity=ENTITY, custom=[("authtoken", "a b+c")])
    request = render(hook, deal)
    assert request.body == b"" and "Content-Type" not in request.headers
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "crm.example.com", "/in")
    assert parse_qs(parts.query, strict_parsing=True) == {
        "source": ["crm"], "name": [HOSTILE], "customer": ["Acme & <Sons>"], "label": [f"Deal: {HOSTILE}!"],
        "amount": ["12500.50"], "authtoken": ["a b+c"],
    }


def test_user_defined_json_body_escapes_strings_and_keeps_numbers_bare(modules, owner, deal):
    body = '{"deal": "${Deals.Deal Name}", "amount": ${Deals.Amount}, "prob": ${Deals.Probability (%)},' \
           ' "note": "Owner: ${User.Full Name} \\"VIP\\"", "stage": ${Deals.Stage}}'
    hook = webhook_create(module=modules["Deals"], body=body, entity=[("src", "${Deals.Deal Id}")])
    request = render(hook, deal)
    assert json.loads(request.body) == {
        "deal": HOSTILE, "amount": 12500.50, "prob": None, "note": 'Owner: Ted Watson "VIP"', "stage": "Closed Won",
    }
    assert b'"amount": 12500.50' in request.body  # the stored digits, not a float's
    assert parse_qs(urlsplit(request.url).query) == {"src": [str(deal.pk)]}


def test_user_defined_xml_body_escapes_text_and_attributes(modules, deal):
    body = "<deal name='${Deals.Deal Name}'><customer>${Accounts.Account Name}</customer></deal>"
    hook = webhook_create(module=modules["Deals"], content_type=ContentType.XML, body=body)
    root = etree.fromstring(render(hook, deal).body, parser=safe_parser())
    assert root.get("name") == HOSTILE  # newline and tab kept, as character references
    assert root.findtext("customer") == "Acme & <Sons>"


def test_control_characters_are_dropped_from_xml(modules, owner):
    lead = crm_services.record_create(module=modules["Leads"], owner=owner,
                                      values={"Last_Name": "Bad\x08\x1bName\ufffe"})
    hook = webhook_create(module=modules["Leads"], content_type=ContentType.XML, entity=[("n", "${Leads.Last Name}")])
    assert etree.fromstring(render(hook, lead).body, parser=safe_parser()).findtext("n") == "BadName"


@pytest.fixture
def contact_with_deals(organization, owner, modules):
    account = crm_services.record_create(module=modules["Accounts"], owner=owner, values={"Account_Name": "Zylker"})
    contact = crm_services.record_create(module=modules["Contacts"], owner=owner,
                                         values={"First_Name": "Lena", "Last_Name": "de Vries", "Account_Name": account.pk})
    for name, amount in [("First", "10"), ("Second <&>", "20.5")]:
        crm_services.record_create(module=modules["Deals"], owner=owner,
                                   values={"Deal_Name": name, "Amount": amount, "Contact_Name": contact.pk})
    crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Someone else's"})
    return contact


RELATED = [("contact.name", "${Contacts.First Name} ${Contacts.Last Name}"), ("contact.account", "${Accounts.Account Name}"),
           ("deals.name", "${Deals.Deal Name}"), ("deals.amount", "${Deals.Amount}"),
           ("deals.owner.name", "${Deals.Deal Owner}"), ("deal_names", "${Deals.Deal Name}")]


def test_related_module_fields_become_arrays_with_dot_notation_in_json(modules, contact_with_deals):
    hook = webhook_create(module=modules["Contacts"], method=Method.PUT, entity=RELATED)
    assert json.loads(render(hook, contact_with_deals).body) == {
        "contact": {"name": "Lena de Vries", "account": "Zylker"},
        "deals": [
            {"name": "First", "amount": "10.00", "owner": {"name": "Ted Watson"}},
            {"name": "Second <&>", "amount": "20.50", "owner": {"name": "Ted Watson"}},
        ],
        "deal_names": ["First", "Second <&>"],
    }


def test_related_module_arrays_in_xml_and_form(modules, contact_with_deals):
    xml_hook = webhook_create(module=modules["Contacts"], content_type=ContentType.XML, entity=RELATED[2:4], name="x")
    root = etree.fromstring(render(xml_hook, contact_with_deals).body, parser=safe_parser())
    assert [(d.findtext("name"), d.findtext("amount")) for d in root.findall("deals")] == [
        ("First", "10.00"), ("Second <&>", "20.50")]
    form_hook = webhook_create(module=modules["Contacts"], content_type=ContentType.FORM, entity=RELATED[2:4], name="f")
    assert parse_qsl(render(form_hook, contact_with_deals).body.decode()) == [
        ("deals[0][name]", "First"), ("deals[1][name]", "Second <&>"),
        ("deals[0][amount]", "10.00"), ("deals[1][amount]", "20.50"),
    ]


def test_a_record_without_related_records_sends_an_empty_array(modules, owner):
    contact = crm_services.record_create(module=modules["Contacts"], owner=owner, values={"Last_Name": "Alone"})
    hook = webhook_create(module=modules["Contacts"], entity=RELATED[2:4])
    assert json.loads(render(hook, contact).body) == {"deals": []}


@pytest.mark.parametrize(("token", "setup", "reason"), [
    ("${Deals.Colour}", None, "Deals has no field “Colour”"),
    ("${Deals.Type}", {"api_name": "Type", "is_deleted": True}, "the field “Deals.Type” is deleted"),
    ("${Accounts.Account Name}", {"api_name": "Account_Name", "is_deleted": True},
     "the lookup field “Account Name” to Accounts is deleted or disabled"),
    ("${Deals.Stage}", {"api_name": "Stage", "is_disabled": True}, "the field “Deals.Stage” is disabled"),
    ("${Leads.Lead Id}", None, "Leads fields are not available for Deals webhooks"),
    ("${Planets.Name}", None, "there is no module “Planets”"),
    ("${User.Shoe Size}", None, "User has no field “Shoe Size”"),
])
def test_unsupported_merge_fields_render_as_unsupported_field(modules, deal, token, setup, reason):
    hook = webhook_create(module=modules["Deals"], entity=[("value", token), ("name", "${Deals.Deal Name}")])
    if setup:
        Field.objects.filter(module=modules["Deals"], api_name=setup.pop("api_name")).update(**setup)
    assert json.loads(render(hook, deal).body) == {"value": "${Unsupported_Field}", "name": HOSTILE}
    assert webhook_unsupported_merge_fields(webhook=hook) == [(token, reason)]


def test_cached_metadata_follows_every_kind_of_field_change(modules, deal):
    hook = webhook_create(module=modules["Deals"], entity=[("stage", "${Deals.Stage}"), ("type", "${Deals.Type}")])
    assert json.loads(render(hook, deal).body) == {"stage": "Closed Won", "type": "New Business"}
    stage = Field.objects.get(module=modules["Deals"], api_name="Stage")
    stage.is_deleted = True
    stage.save()  # one field, as the admin does
    assert json.loads(render(hook, deal).body) == {"stage": "${Unsupported_Field}", "type": "New Business"}
    Field.objects.filter(module=modules["Deals"], api_name="Type").update(is_disabled=True)  # a bulk change
    assert json.loads(render(hook, deal).body) == {"stage": "${Unsupported_Field}", "type": "${Unsupported_Field}"}
    Field.objects.filter(module=modules["Deals"]).filter(api_name__in=["Stage", "Type"]).update(
        is_deleted=False, is_disabled=False)
    assert json.loads(render(hook, deal).body) == {"stage": "Closed Won", "type": "New Business"}


def test_unsupported_field_outside_quotes_in_a_json_body_stays_valid_json(modules, deal):
    hook = webhook_create(module=modules["Deals"], body='{"x": ${Deals.Colour}}')
    assert json.loads(render(hook, deal).body) == {"x": "${Unsupported_Field}"}


def test_aliases_reach_the_same_module(modules, deal):
    hook = webhook_create(module=modules["Deals"], entity=[("a", "${Potentials.Amount}"), ("b", "${Potential.Deal Name}")])
    assert json.loads(render(hook, deal).body) == {"a": "12500.50", "b": HOSTILE}


@pytest.mark.parametrize("name", ["a--b", "ends with -", "--->", "<!-- -->", "x---y"])
def test_a_merge_field_inside_an_xml_comment_keeps_the_document_well_formed(modules, owner, name):
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": name})
    hook = webhook_create(module=modules["Deals"], content_type=ContentType.XML,
                          body="<deal><!-- for ${Deals.Deal Name} --><name>${Deals.Deal Name}</name></deal>")
    root = etree.fromstring(render(hook, deal).body, parser=safe_parser())
    assert root.findtext("name") == name  # element text keeps the value exactly
    [comment] = [node for node in root.iter() if isinstance(node, etree._Comment)]
    assert "--" not in comment.text and comment.text.replace(" ", "").startswith("for")


def test_zoho_legacy_labels_resolve_as_seed_003_spells_them(modules, deal, owner):
    """Seed 003 writes ${Potentials.Potential Name}, ${Potentials.Potential Owner} and ${Account.Name}."""
    hook = webhook_create(module=modules["Deals"], entity=[
        ("name", "${Potentials.Potential Name}"), ("owner", "${Potentials.Potential Owner}"),
        ("account", "${Account.Name}"), ("amount", "${Potential.Amount}"), ("contact", "${Contact.Last Name}"),
        ("nowhere", "${Potentials.Potential Colour}"), ("not_a_name", "${Account.Nickname}"),
    ])
    assert json.loads(render(hook, deal).body) == {
        "name": HOSTILE, "owner": f"{owner.first_name} {owner.last_name}",
        "account": NAME_WITH_CONTROL.replace("\x01", ""), "amount": "12500.50", "contact": "O'Neil",
        "nowhere": "${Unsupported_Field}", "not_a_name": "${Unsupported_Field}",
    }
    assert [name for name, _ in webhook_unsupported_merge_fields(webhook=hook)] == [
        "${Account.Nickname}", "${Potentials.Potential Colour}"]


@pytest.mark.parametrize(("date_format", "datetime_format", "time_zone", "date", "stamp"), [
    ("", "", "", "2026-11-30", "2026-07-01T16:30:00+02:00"),  # organization defaults: Europe/Amsterdam, ISO
    ("dd/MM/yyyy", "yyyy-MM-dd HH:mm:ss", "America/New_York", "30/11/2026", "2026-07-01 10:30:00"),
    ("MM/dd/yyyy", "MM/dd/yyyy hh:mm a", "Asia/Kolkata", "11/30/2026", "07/01/2026 08:00 PM"),
    ("dd.MM.yyyy", "yyyy-MM-dd'T'HH:mm:ssXXX", "Pacific/Kiritimati", "30.11.2026", "2026-07-02T04:30:00+14:00"),
])
def test_dates_and_datetimes_use_the_webhook_format_and_time_zone(
    modules, owner, deal, date_format, datetime_format, time_zone, date, stamp
):
    event = crm_services.record_create(module=modules["Events"], owner=owner, values={
        "Event_Title": "Demo", "Start_DateTime": "2026-07-01T14:30:00+00:00", "Related_Deal": deal.pk,
    })
    hook = webhook_create(module=modules["Events"], date_format=date_format, datetime_format=datetime_format,
                          time_zone=time_zone, entity=[("start", "${Events.Start DateTime}"),
                                                       ("closing", "${Deals.Closing Date}")])
    assert json.loads(render(hook, event).body) == {"start": stamp, "closing": date}


def test_basic_auth_header_is_sent_and_masked_in_the_preview(modules, deal):
    hook = webhook_create(module=modules["Deals"], auth_type="basic", auth_username="crm", auth_password="pä55:word",
                          entity=[("n", "${Deals.Deal Name}")], custom=[("token", "tok-123456")])
    request = render(hook, deal)
    assert request.headers["Authorization"] == "Basic " + base64.b64encode("crm:pä55:word".encode()).decode()
    preview = services.webhook_preview(webhook=hook, record=deal).as_text()
    assert "Authorization: Basic ********" in preview
    assert "pä55" not in preview and "tok-123456" not in preview
    assert '"token": "********"' in preview


def test_signature_verifies_with_the_standard_webhooks_library(modules, deal):
    hook = webhook_create(module=modules["Deals"], entity=ENTITY)
    now = int(datetime.datetime.now(datetime.UTC).timestamp())
    request = render(hook, deal, message_id="msg_2hX", timestamp=now)
    headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    verified = StandardWebhook(hook.signing_secret).verify(request.body, headers)
    assert verified["name"] == HOSTILE
    tampered = request.body.replace(b"12500.50", b"99999.99")
    with pytest.raises(Exception, match="No matching signature"):
        StandardWebhook(hook.signing_secret).verify(tampered, headers)


def test_the_receiver_helper_verifies_the_signature(modules, deal):
    from dispatcher.transport.signing import signature_verify

    hook = webhook_create(module=modules["Deals"], entity=ENTITY)
    request = render(hook, deal, message_id="msg_x", timestamp=1_700_000_000)
    arguments = {"secret": hook.signing_secret, "message_id": "msg_x", "timestamp": 1_700_000_000}
    header = "v1,bm90IHRoaXMgb25l " + request.headers["webhook-signature"]  # several signatures may be sent
    assert signature_verify(body=request.body, header=header, **arguments)
    assert not signature_verify(body=request.body + b" ", header=header, **arguments)


@pytest.fixture
def demo(db):
    organization = demo_load()
    deal = organization.modules.get(api_name="Deals").records.get(values__Deal_Name="Website redesign")
    return organization, deal


def test_seed_scenario_1_creator_commission_xml(demo):
    organization, deal = demo
    hook = Webhook.objects.get(organization=organization, name="Creator sales commission")
    request = render(hook, deal)
    root = etree.fromstring(request.body, parser=safe_parser())
    fields = {f.get("name"): f.findtext("value") for f in root.iter("field")}
    assert fields == {"Name": "Website redesign", "Closed_Amount": "12500.00", "Closing_Date": "2026-11-30",
                      "Customer_Name": "Zylker Systems", "Type_of_Business": "New Business", "Sales_Rep": "Ted Watson"}
    assert parse_qs(urlsplit(request.url).query) == {"authtoken": ["demo-creator-token-123"], "zc_ownername": ["zylker"]}


def test_seed_scenario_2_sms_reminder_xml(demo):
    organization, deal = demo
    hook = Webhook.objects.get(organization=organization, name="SMS payment reminder")
    root = etree.fromstring(render(hook, deal).body, parser=safe_parser())
    message = root.find("{http://www.defns.com}Message")
    assert message.get("mobilenumber") == "+31 6 8765 4321"
    assert message.text == ("Hello Watson, the payment of 12500.00 from Zylker Systems is due today. "
                            "Please contact de Vries as soon as possible.")


def test_every_demo_webhook_renders_without_unsupported_fields(demo):
    organization, _ = demo
    for hook in Webhook.objects.filter(organization=organization):
        assert webhook_unsupported_merge_fields(webhook=hook) == [], hook.name
        record = hook.module.records.first()
        assert b"Unsupported_Field" not in render(hook, record).body, hook.name
