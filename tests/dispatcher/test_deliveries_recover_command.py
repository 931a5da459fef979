"""python manage.py deliveries_recover: what POST /deliveries/recover/ does, from the command line (one service,
dispatcher.delivery.deliveries_recover): the failed deliveries of one webhook or channel since a time queued
again with their delivery id, a dry run that queues nothing, and errors that say what is wrong."""
import datetime
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from crm import services as crm_services
from crm.models import ApiScope
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery, DeliveryStatus, RetryPolicy
from dispatcher.senders import channels
from tests.factories import CrmUserFactory, OrganizationFactory, failed_delivery, webhook_create

SINCE = (timezone.now() - datetime.timedelta(hours=1)).isoformat()


@pytest.fixture
def hook(receiver, modules):
    no_retries = RetryPolicy.objects.create(name="No retries", code="none", delays=[])
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                          retry_policy=no_retries)


def recover(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("deliveries_recover", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def statuses(*deliveries: Delivery) -> list[str]:
    return [Delivery.objects.get(pk=d.pk).status for d in deliveries]


def test_a_dry_run_counts_and_a_recover_sends_each_again_with_its_delivery_id(receiver, owner, modules, hook):
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    outage = [failed_delivery(webhook=hook, record=deal) for _ in range(3)]  # a record to render the request for
    before = failed_delivery(webhook=hook, hours_ago=5)  # failed before the outage began: not recovered
    other = failed_delivery(webhook=webhook_create(module=modules["Deals"], name="Other"))
    done = Delivery.objects.create_historical(organization=owner.organization, webhook=hook, webhook_name="Books",
                                              record_ref="Deals #2", retry_policy_id=RetryPolicy.default_id(),
                                              status=DeliveryStatus.SUCCESS)
    organization = owner.organization.name

    out, _ = recover("--organization", organization, "--webhook", str(hook.pk), "--since", SINCE, "--dry-run")
    assert out == f"3 failed deliveries of webhook {hook.pk} would be queued again (dry run: nothing was queued).\n"
    assert statuses(*outage, before, other, done) == ["failed"] * 5 + ["success"]

    receiver.expect_request("/hook").respond_with_data("ok")  # the receiver is fixed
    out, _ = recover("--organization", str(owner.organization_id), "--webhook", "Books", "--since", SINCE, "-v", "2")
    assert sorted(out.splitlines()[:3]) == sorted(d.message_id for d in outage)
    assert out.splitlines()[3] == "3 failed deliveries of webhook Books queued again with their delivery id."
    assert statuses(*outage, before, other, done) == ["queued"] * 3 + ["failed", "failed", "success"]
    assert {Delivery.objects.get(pk=d.pk).resent_by for d in outage} == {"deliveries_recover command"}
    claimed = delivery_engine.deliveries_claim(now=timezone.now(), limit=500)
    for pk, token in claimed:
        delivery_engine.delivery_attempt(delivery_id=pk, token=token)
    assert sorted(request.headers["webhook-id"] for request, _ in receiver.log) == sorted(d.message_id
                                                                                          for d in outage)
    assert statuses(*outage) == ["success"] * 3


def test_the_command_and_the_api_recover_the_same_deliveries(client, owner, hook):
    """The command's dry run lists what the API then recovers; after it, the command finds nothing left."""
    first = [failed_delivery(webhook=hook) for _ in range(2)]
    key = crm_services.api_key_create(user=owner, name="Ops", scopes=[ApiScope.DELIVERIES_REPLAY])[1]
    out, _ = recover("--organization", owner.organization.name, "--webhook", str(hook.pk), "--since", SINCE,
                     "--dry-run", "-v", "2")
    listed = sorted(out.splitlines()[:2])
    response = client.post("/api/v1/deliveries/recover/", json.dumps({"webhook": hook.pk, "since": SINCE}),
                           content_type="application/json", headers={"X-API-Key": key})
    assert response.status_code == 200 and sorted(response.json()["data"]["ids"]) == listed == sorted(
        d.message_id for d in first)
    out, _ = recover("--organization", owner.organization.name, "--webhook", str(hook.pk), "--since", SINCE)
    assert out.startswith("0 failed deliveries")


def test_a_channel_is_recovered_by_its_id_and_the_limit_says_to_run_again(owner, organization):
    channel = channels.channel_create(organization=organization, owner=owner, events=["Deals.create"],
                                      notify_url="https://receiver.example/notify")
    notifications = [failed_delivery(channel=channel) for _ in range(3)]
    out, err = recover("--organization", organization.name, "--channel", channel.public_id, "--since", SINCE,
                       "--until", timezone.now().isoformat(), "--limit", "2")
    assert out == f"2 failed deliveries of channel {channel.public_id} queued again with their delivery id.\n"
    assert err == "That is the limit of 2: run the command again for the rest.\n"
    assert statuses(*notifications) == ["queued", "queued", "failed"]  # the oldest first


def test_other_filters_narrow_what_is_recovered(owner, modules, hook):
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    of_the_deal, timeout, other = failed_delivery(webhook=hook, record=deal), failed_delivery(webhook=hook), failed_delivery(webhook=hook)
    Delivery.objects.filter(pk=timeout.pk).update(last_error_class="timeout")
    base = ["--organization", owner.organization.name, "--webhook", str(hook.pk), "--since", SINCE, "--dry-run",
            "-v", "2"]
    assert recover(*base, "--record", str(deal.pk))[0].splitlines()[0] == of_the_deal.message_id
    assert recover(*base, "--error-class", "timeout")[0].splitlines()[0] == timeout.message_id
    assert statuses(of_the_deal, timeout, other) == ["failed"] * 3


@pytest.mark.parametrize(("arguments", "message"), [
    (["--organization", "Nobody", "--webhook", "1"], "There is no organization “Nobody” (organizations: "),
    (["--webhook", "999999"], "There is no webhook with id 999999. (organization "),
    (["--webhook", "Nameless"], "There is no webhook named “Nameless” (organization "),
    (["--channel", "ch_missing"], "There is no channel “ch_missing”. (organization "),
    (["--webhook", "{hook}", "--since", "yesterday"], "--since: Give an ISO 8601 date and time, e.g. "),
    (["--webhook", "{hook}", "--until", "2026-02-30T09:00:00Z"], "--until: “2026-02-30T09:00:00Z” is not a date "),
    (["--webhook", "{hook}", "--limit", "0"], "--limit: give a number of 1 or more."),
    (["--webhook", "{hook}", "--channel", "ch_x"], "argument --channel: not allowed with argument --webhook"),
    ([], "one of the arguments --webhook --channel is required"),
])
def test_errors_say_what_is_wrong_and_queue_nothing(owner, hook, arguments, message):
    stranger = CrmUserFactory(organization=OrganizationFactory())
    theirs = failed_delivery(webhook=webhook_create(module=stranger.organization.modules.get(api_name="Deals"),
                                           name="Theirs"))
    mine = failed_delivery(webhook=hook)
    given = [argument.format(hook=hook.pk) for argument in arguments]
    if "--organization" not in given:
        given += ["--organization", owner.organization.name]
    if "--since" not in given:
        given += ["--since", SINCE]
    with pytest.raises(CommandError) as raised:
        recover(*given)
    assert message in str(raised.value)
    with pytest.raises(CommandError, match=r"There is no webhook with id \d+\. \(organization Zylker"):
        recover("--organization", owner.organization.name, "--webhook", str(theirs.webhook_id), "--since", SINCE)
    assert statuses(theirs, mine) == ["failed", "failed"]
