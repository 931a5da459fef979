"""Demo workflow rules on top of the demo webhooks: the two business scenarios of seed 003."""
import datetime

from django.db import transaction

from crm.models import ApiKey, CrmUser, Field, Organization
from crm import services as crm_services
from dispatcher.demo import demo_load as webhooks_demo_load
from dispatcher.models import Webhook
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
    raw = None
    if not ApiKey.objects.filter(organization=organization, name="Demo").exists():
        owner = CrmUser.objects.filter(organization=organization, is_admin=True).order_by("pk").first()
        raw = crm_services.api_key_create(user=owner, name="Demo")[1]
    return organization, raw
