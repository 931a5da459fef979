"""Every path that makes a delivery row goes through one builder (dispatcher/delivery/rows.py): a workflow
action, a channel's notification, a resend, a test send and a time-based run logged as cancelled name their
record alike, and an edition without webhooks is refused in the same words wherever it is refused.
Real code paths: records saved through crm, rules through workflows, requests to a real local server."""
import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm import services as crm_services
from crm.models import Edition, Field
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery, DeliverySource, DeliveryStatus
from dispatcher.ops.quotas import webhooks_refusal
from dispatcher.senders import channels
from dispatcher.senders.webhook_checks import webhook_check_definition
from dispatcher.senders.webhooks import webhook_send_test
from tests.factories import webhook_create
from workflows import engine
from workflows import services as workflow_services
from workflows.models import Action, ActionRun, Condition, WorkflowRule

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def hook(receiver, modules):
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")])


def rule_make(modules, hook, *, kind: str, name: str) -> WorkflowRule:
    """A rule on Deals created while Stage is Closed Won, with one action of kind (instant or two hours later)."""
    stage = Field.objects.get(module=modules["Deals"], api_name="Stage")
    rule = WorkflowRule(organization=modules["Deals"].organization, module=modules["Deals"], name=name,
                        trigger="create")
    timing = {"delay_amount": 2, "delay_unit": "hours"} if kind == "time_based" else {}
    return workflow_services.rule_save(
        rule=rule, conditions=[Condition(number=1, field=stage, operator="is", value="Closed Won")],
        actions=[Action(webhook=hook, kind=kind, **timing)]).rule


def deal_create(owner, modules, **values):
    return crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Big deal", "Stage": "Closed Won", **values})


def run_due(now=None) -> list[Delivery]:
    claimed = delivery_engine.deliveries_claim(now=now or timezone.now(), limit=100)
    return [delivery_engine.delivery_attempt(delivery_id=pk, token=token) for pk, token in claimed]


def webhooks_taken_away(organization) -> str:
    organization.edition = Edition.objects.get(code="free")
    organization.save()
    refusal = webhooks_refusal(organization)
    assert refusal == f"The Free Edition of {organization.name} does not include webhooks; upgrade the edition."
    return refusal


def test_every_path_names_its_record_alike(receiver, owner, modules, hook):
    receiver.expect_request("/hook").respond_with_data("ok")
    receiver.expect_request("/notify").respond_with_data("ok")
    rule_make(modules, hook, kind="instant", name="Now")
    rule_make(modules, hook, kind="time_based", name="Later")
    channels.channel_create(organization=owner.organization, owner=owner, events=["Deals.create"],
                            notify_url=receiver.url_for("/notify"))
    deal = deal_create(owner, modules)
    ref = delivery_engine.record_ref_of(deal)
    assert ref == f"Deals #{deal.pk}"
    crm_services.record_update(record=deal, values={"Stage": "Closed Lost"})  # the later action is cancelled
    assert engine.runs_fire_due(now=timezone.now() + 3 * HOUR) == 1
    _, _, tested = webhook_send_test(webhook=hook, record=deal, by="ada")
    action = Delivery.objects.get(source=DeliverySource.WORKFLOW, status=DeliveryStatus.QUEUED)
    notification = Delivery.objects.get(source=DeliverySource.SUBSCRIPTION)
    cancelled = Delivery.objects.get(status=DeliveryStatus.CANCELLED)
    assert cancelled.status_reason == "The record no longer meets the rule's criteria."
    assert tested.source == DeliverySource.TEST and tested.trigger == "Test send by ada"
    assert notification.webhook_name == f"Channel {notification.channel.public_id}"
    assert (action.trigger, cancelled.trigger) == ("Rule “Now” on create", "Rule “Later”, time-based action")
    assert {run.record_ref for run in ActionRun.objects.all()} == {ref}
    assert {d.record_ref for d in (action, notification, cancelled, tested)} == {ref}
    assert {d.record_id for d in (action, notification, cancelled, tested)} == {deal.pk}
    # A resend makes no row: the cancelled delivery is queued again under the same reference, and sent.
    assert delivery_engine.deliveries_resend(ids=[cancelled.pk], by="ada") == 1
    assert Delivery.objects.count() == 4
    outcomes = {d.pk: (d.status, d.record_ref) for d in run_due()}
    assert outcomes == {d.pk: (DeliveryStatus.SUCCESS, ref) for d in (action, notification, cancelled)}


def test_an_edition_without_webhooks_is_refused_in_the_same_words_everywhere(receiver, owner, modules, hook,
                                                                              organization):
    """Refused at once where a rule or a call asks for a delivery; a channel's notification is still made (a
    record change never fails for a subscriber's sake) and, like a resend, fails at its attempt without a
    request. A run logged as cancelled is never sent, so it is not refused."""
    rule_make(modules, hook, kind="time_based", name="Later")
    channels.channel_create(organization=organization, owner=owner, events=["Deals.edit"],
                            notify_url=receiver.url_for("/notify"))
    deal = deal_create(owner, modules)
    crm_services.record_update(record=deal, values={"Stage": "Closed Lost"})  # notified; the action is cancelled
    assert engine.runs_fire_due(now=timezone.now() + 3 * HOUR) == 1
    cancelled = Delivery.objects.get(status=DeliveryStatus.CANCELLED)
    refusal = webhooks_taken_away(organization)

    # A workflow action, enqueued by a record change: the change is refused.
    with pytest.raises(ValidationError) as refused:
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    assert refused.value.messages == [refusal]
    # The definitions that lead to deliveries: a webhook, a rule's actions, a channel.
    assert webhook_check_definition(webhook=hook)["organization"] == [refusal]
    rule = WorkflowRule(organization=organization, module=modules["Deals"], name="Again", trigger="create")
    problems = workflow_services.rule_check(rule=rule, conditions=[], actions=[Action(webhook=hook, kind="instant")])
    assert refusal in problems["actions"]
    with pytest.raises(ValidationError) as refused:
        channels.channel_create(organization=organization, owner=owner, events=["Deals.create"],
                                notify_url=receiver.url_for("/other"))
    assert refused.value.messages == [refusal]
    # A channel's notification and a resend: made, then failed by their attempt with the same words.
    crm_services.record_update(record=deal, values={"Amount": "7"})
    assert delivery_engine.deliveries_resend(ids=[cancelled.pk], by="ada") == 1
    failed = run_due()
    assert {d.source for d in failed} == {DeliverySource.SUBSCRIPTION, DeliverySource.WORKFLOW}
    assert {(d.status, d.status_reason) for d in failed} == {(DeliveryStatus.FAILED, refusal)}
    assert receiver.log == []
    # A cancelled run is still logged: it is never sent.
    logged = delivery_engine.delivery_log_cancelled(webhook=hook, record=deal, record_ref=f"Deals #{deal.pk}",
                                                    trigger="Rule", reason="The record was deleted.")
    assert logged.status == DeliveryStatus.CANCELLED
