"""Demo data for a first look: an organization, users, linked records and webhooks. Safe to load twice."""
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from crm import services as crm_services
from crm.models import CrmUser, Edition, Module, Organization, Record
from dispatcher.senders import webhooks as services
from dispatcher.senders.webhook_rows import Parameter
from dispatcher.models import AuthType, ContentType, Method, Webhook

ORGANIZATION = "Zylker Inc"
BODIES_DIR = settings.BASE_DIR / "templates" / "webhook_bodies"


def starter_body(name: str) -> str:
    """A starter body from templates/webhook_bodies (the seed scenarios), for admins to adapt."""
    return (BODIES_DIR / name).read_text()


@transaction.atomic
def demo_load() -> Organization:
    organization = Organization.objects.filter(name=ORGANIZATION).first()
    if organization is None:
        organization = crm_services.organization_create(
            name=ORGANIZATION, edition=Edition.objects.get(code="enterprise"), user_licences=25,
            time_zone="Europe/Amsterdam", date_format="yyyy-MM-dd", phone="+31 20 555 0100",
            website="https://zylker.example", city="Amsterdam", country="Netherlands", currency_code="EUR",
        )
    owner = _user(organization, "Patricia", "Boyle", "patricia.boyle@zylker.example", "+31 6 1234 5678", "CEO", True)
    rep = _user(organization, "Ted", "Watson", "ted.watson@zylker.example", "+31 6 8765 4321", "Sales Rep", False)
    modules = {m.api_name: m for m in Module.objects.filter(organization=organization)}

    zylker = _record(modules["Accounts"], rep, "Account_Name", {
        "Account_Name": "Zylker Systems", "Phone": "+31 20 555 0199", "Industry": "Technology",
        "Billing_City": "Utrecht", "Billing_Country": "Netherlands", "Annual_Revenue": "2500000",
    })
    acme = _record(modules["Accounts"], owner, "Account_Name", {
        "Account_Name": 'Acme & Sons <"Quoted"> Ltd', "Industry": "Retail", "Billing_City": "Zürich",
    })
    lena = _record(modules["Contacts"], rep, "Last_Name", {
        "First_Name": "Lena", "Last_Name": "de Vries", "Email": "lena@zylker-systems.example",
        "Mobile": "+31 6 1111 2222", "Account_Name": zylker.pk,
    })
    omar = _record(modules["Contacts"], owner, "Last_Name", {
        "First_Name": "Omar", "Last_Name": "O'Neil", "Email": "omar@acme.example", "Account_Name": acme.pk,
    })
    _record(modules["Leads"], rep, "Last_Name", {
        "First_Name": "Jan", "Last_Name": "Jansen", "Company": "Jansen Bakkerij", "Email": "jan@bakkerij.example",
        "Lead_Status": "Not Contacted", "Lead_Source": "Web Form",
    })
    _record(modules["Leads"], rep, "Last_Name", {
        "First_Name": "Zoë", "Last_Name": "Müller", "Company": "Line\nBreak & Co", "Email": "zoe@example.com",
        "Lead_Status": "Contacted", "Description": 'Asked for "premium" <support>',
    })
    _record(modules["Deals"], rep, "Deal_Name", {
        "Deal_Name": "Website redesign", "Amount": "12500.00", "Closing_Date": "2026-11-30", "Stage": "Closed Won",
        "Type": "New Business", "Account_Name": zylker.pk, "Contact_Name": lena.pk, "Payment_Due_Date": "2026-12-15",
    })
    _record(modules["Deals"], rep, "Deal_Name", {
        "Deal_Name": "Support renewal 2027", "Amount": "4800.00", "Closing_Date": "2027-01-10",
        "Stage": "Negotiation/Review", "Type": "Existing Business", "Account_Name": zylker.pk, "Contact_Name": lena.pk,
    })
    _record(modules["Deals"], owner, "Deal_Name", {
        "Deal_Name": "Point of sale roll-out", "Amount": "98000.00", "Closing_Date": "2027-03-01",
        "Stage": "Proposal/Price Quote", "Type": "New Business", "Account_Name": acme.pk, "Contact_Name": omar.pk,
    })
    for spec in _webhook_specs(modules):
        if not Webhook.objects.filter(organization=organization, name=spec["name"]).exists():
            entity = [Parameter(n, v) for n, v in spec.pop("entity", [])]
            custom = [Parameter(n, v) for n, v in spec.pop("custom", [])]
            services.webhook_save(webhook=Webhook(organization=organization, **spec),
                                  entity_parameters=entity, custom_parameters=custom)
    return organization


def _user(organization, first, last, email, mobile, role, is_admin) -> CrmUser:
    user, _ = CrmUser.objects.get_or_create(
        organization=organization, email=email,
        defaults={"first_name": first, "last_name": last, "mobile": mobile, "role": role, "is_admin": is_admin},
    )
    return user


def _record(module: Module, owner: CrmUser, name_field: str, values: dict[str, Any]) -> Record:
    existing = Record.objects.filter(module=module, **{f"values__{name_field}": values[name_field]}).first()
    return existing or crm_services.record_create(module=module, owner=owner, values=values)


def _webhook_specs(modules: dict[str, Module]) -> list[dict[str, Any]]:
    return [
        {
            "name": "Creator sales commission", "module": modules["Deals"],
            "description": "Seed 003, scenario 1: record the commission in the Zoho Creator app.",
            "url": "https://creator.zoho.com/api/xml/write", "method": Method.POST, "content_type": ContentType.XML,
            "body": starter_body("zoho_creator_commission.xml"),
            "custom": [("authtoken", "demo-creator-token-123"), ("zc_ownername", "zylker")],
        },
        {
            "name": "SMS payment reminder", "module": modules["Deals"],
            "description": "Seed 003, scenario 2: text the sales rep on the payment due date.",
            "url": "https://sms.example.com/smsgateway/post", "method": Method.POST, "content_type": ContentType.XML,
            "body": starter_body("sms_gateway.xml"),
            "custom": [("authtoken", "demo-sms-token-456")],
        },
        {
            "name": "Invoice to accounting", "module": modules["Deals"],
            "description": "Create an invoice when a deal is won.",
            "url": "https://books.example.com/api/invoices", "method": Method.POST, "content_type": ContentType.JSON,
            "body": starter_body("invoice.json"), "auth_type": AuthType.BASIC,
            "auth_username": "crm", "auth_password": "demo-basic-password",
        },
        {
            "name": "Lead to mailing list", "module": modules["Leads"],
            "description": "Subscribe new web-form leads.",
            "url": "https://mailing.example.com/lists/subscribe", "method": Method.POST,
            "content_type": ContentType.FORM,
            "entity": [("email", "${Leads.Email}"), ("name", "${Leads.First Name} ${Leads.Last Name}"),
                       ("company", "${Leads.Company}")],
            "custom": [("api_key", "demo-mailing-key-789")],
        },
        {
            "name": "Lead check", "module": modules["Leads"], "description": "Look the lead up in a scoring service.",
            "url": "https://scoring.example.com/score", "method": Method.GET, "content_type": ContentType.JSON,
            "entity": [("email", "${Leads.Email}"), ("company", "${Leads.Company}"), ("owner", "${User.Full Name}")],
        },
        {
            "name": "Contact with deals", "module": modules["Contacts"],
            "description": "Seed 004: a contact and its related deals in one request.",
            "url": "https://erp.example.com/contacts", "method": Method.PUT, "content_type": ContentType.JSON,
            "entity": [
                ("contact.first_name", "${Contacts.First Name}"), ("contact.last_name", "${Contacts.Last Name}"),
                ("contact.account", "${Accounts.Account Name}"),
                ("deals.name", "${Deals.Deal Name}"), ("deals.amount", "${Deals.Amount}"),
                ("deals.stage", "${Deals.Stage}"),
            ],
        },
    ]


def admin_password_file() -> Path:
    return settings.VAR_DIR / "admin-password"
