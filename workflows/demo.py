"""Demo workflow rules on top of the demo webhooks: the two business scenarios of seed 003."""
import datetime

from django.db import transaction

from crm import services as crm_services
from crm.models import ApiKey, ApiScope, CrmUser, Edition, Field, Organization, Record
from dispatcher.senders import webhooks as webhook_services
from dispatcher.senders.webhook_rows import Parameter
from dispatcher.config_io.demo import demo_load as webhooks_demo_load
from dispatcher.models import RetryPolicy, Webhook
from workflows import services
from workflows.models import Action, Condition, WorkflowRule


@transaction.atomic
def demo_load() -> tuple[Organization, str | None]:
    """Load the demo; returns the organization and, the first time only, a new raw API key."""
    organization = webhooks_demo_load()
    deals = organization.modules.get(api_name="Deals")

    def field(api_name: str) -> Field:
        return Field.objects.get(module=deals, api_name=api_name)

    def webhook(name: str) -> Webhook:
        return Webhook.objects.get(organization=organization, name=name)

    # Seed 003 step 3 of each scenario: criteria on create or edit, tested by adding a deal (step 4). "Only the
    # first time" is Zoho's default (no "repeat on every edit"): a won deal that is edited again pays no second
    # commission, and a deal gets one payment reminder.
    if not WorkflowRule.objects.filter(organization=organization, name="Commission on won deals").exists():
        services.rule_save(
            rule=WorkflowRule(organization=organization, module=deals, name="Commission on won deals",
                              description="Seed 003 scenario 1: a new-business deal is (or becomes) Closed Won.",
                              trigger="create_or_edit", edit_mode="first_match", criteria_pattern="1 and 2"),
            conditions=[Condition(number=1, field=field("Type"), operator="is", value="New Business"),
                        Condition(number=2, field=field("Stage"), operator="is", value="Closed Won")],
            actions=[Action(webhook=webhook("Creator sales commission"), kind="instant"),
                     Action(webhook=webhook("Invoice to accounting"), kind="time_based", delay_amount=5,
                            delay_unit="minutes")],
        )
    # Scenario 2's step 4 adds an Existing Business deal due today, so its criteria cannot ask for New Business
    # as its step 3 does; the payment due date is what the reminder needs.
    if not WorkflowRule.objects.filter(organization=organization, name="Payment due reminder").exists():
        services.rule_save(
            rule=WorkflowRule(organization=organization, module=deals, name="Payment due reminder",
                              description="Seed 003 scenario 2: text the rep on the payment due date.",
                              trigger="create_or_edit", edit_mode="first_match"),
            conditions=[Condition(number=1, field=field("Payment_Due_Date"), operator="not_empty")],
            actions=[Action(webhook=webhook("SMS payment reminder"), kind="time_based",
                            relative_field=field("Payment_Due_Date"), relative_time=datetime.time(9, 0))],
        )
    return organization, _demo_api_key(organization)


DEMO_API_KEY = "Demo"
# The demo's key may call every operation of docs/integrate/rest-api.md (records, channels, the delivery log with
# resend and recover, usage, webhooks, rules and the configuration file), as its curl lines show.
DEMO_API_SCOPES = list(ApiScope.values)


def _demo_api_key(organization: Organization) -> str | None:
    """The first time, a new raw key with every scope. A demo key made before it had every scope (by default:
    records and channels only) is given the rest, so the key command 1 prints can follow that page."""
    key = ApiKey.objects.filter(organization=organization, name=DEMO_API_KEY).first()
    if key is None:
        owner = CrmUser.objects.filter(organization=organization, is_admin=True).order_by("pk")[:1].get()
        return crm_services.api_key_create(user=owner, name=DEMO_API_KEY, scopes=DEMO_API_SCOPES)[1]
    if set(key.scopes) != set(DEMO_API_SCOPES):
        ApiKey.objects.filter(pk=key.pk).update(scopes=DEMO_API_SCOPES)
    return None


SECOND_ORGANIZATION = "Acme Corp"


@transaction.atomic
def demo_second_organization_load() -> Organization:
    """A second, smaller organization on Vtiger's edition and retry policy, so that a staff login of each
    shows what per-organization scoping means. Safe to load twice."""
    organization = Organization.objects.filter(name=SECOND_ORGANIZATION).first()
    if organization is None:
        organization = crm_services.organization_create(
            name=SECOND_ORGANIZATION, edition=Edition.objects.get(code="vtiger-one-professional"), user_licences=5,
            time_zone="America/New_York", date_format="MM/dd/yyyy", city="Boston", country="USA", currency_code="USD",
        )
    owner, _ = CrmUser.objects.get_or_create(organization=organization, email="alex.morgan@acme.example", defaults={
        "first_name": "Alex", "last_name": "Morgan", "role": "Operations", "is_admin": True})
    deals = organization.modules.get(api_name="Deals")
    if not Webhook.objects.filter(organization=organization, name="Order to ERP").exists():
        webhook_services.webhook_save(
            webhook=Webhook(organization=organization, module=deals, name="Order to ERP",
                            description="Vtiger: a new deal becomes an order in the ERP.",
                            url="https://erp.acme.example/orders", method="POST", content_type="JSON",
                            retry_policy=RetryPolicy.objects.get(code=RetryPolicy.VTIGER)),
            entity_parameters=[Parameter("deal", "${Deals.Deal Name}"), Parameter("amount", "${Deals.Amount}")],
            custom_parameters=[Parameter("api_key", "demo-acme-erp-key")],
        )
    if not WorkflowRule.objects.filter(organization=organization, name="New deal to ERP").exists():
        services.rule_save(
            rule=WorkflowRule(organization=organization, module=deals, name="New deal to ERP", trigger="create",
                              match_all_records=True),
            conditions=[], actions=[Action(webhook=Webhook.objects.get(organization=organization, name="Order to ERP"),
                                           kind="instant")],
        )
    if not Record.objects.filter(module=deals).exists():
        crm_services.record_create(module=deals, owner=owner, values={"Deal_Name": "Warehouse scanners",
                                                                      "Amount": "18000"})
    return organization
