"""Recover from the admin (Deliveries › Recover…): the same service as POST /deliveries/recover/ and the
deliveries_recover command, behind the resend permission; a dry run counts, a recover queues again with
the delivery id, and a form that is wrong says so and keeps what was typed."""
import datetime

import lxml.html
import pytest
from django.urls import reverse
from django.utils import timezone

from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery, RetryPolicy
from tests.factories import OrganizationFactory, failed_delivery, staff_login, webhook_create

RECOVER = reverse("admin:dispatcher_delivery_recover")
SINCE = (timezone.localtime() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def hook(receiver, modules):
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                          retry_policy=RetryPolicy.objects.create(name="No retries", code="none", delays=[]))


@pytest.fixture
def integrator(client, organization):
    client.force_login(staff_login(organization, "integrator", group="Integration admin"))
    return client


def statuses(*deliveries: Delivery) -> list[str]:
    return [Delivery.objects.get(pk=d.pk).status for d in deliveries]


def test_a_dry_run_counts_then_a_recover_queues_again_and_the_receiver_gets_each_id(integrator, receiver, hook):
    outage = [failed_delivery(webhook=hook) for _ in range(2)]
    before = failed_delivery(webhook=hook, hours_ago=5)
    changelist = integrator.get(reverse("admin:dispatcher_delivery_changelist")).content.decode()
    assert RECOVER in changelist  # the button on the log

    answer = integrator.post(RECOVER, {"webhook": hook.pk, "since": SINCE, "limit": 100, "dry_run": "on"}, follow=True)
    assert [str(m) for m in answer.context["messages"]] == [
        f"2 failed deliveries of {hook} since {SINCE.replace('T', ' ')} would be queued again "
        "(dry run: nothing was queued)."]
    assert statuses(*outage, before) == ["failed"] * 3

    receiver.expect_request("/hook").respond_with_data("ok")
    answer = integrator.post(RECOVER, {"webhook": hook.pk, "since": SINCE, "limit": 100}, follow=True)
    assert [str(m) for m in answer.context["messages"]] == [
        f"2 failed deliveries of {hook} since {SINCE.replace('T', ' ')} queued again."]
    assert statuses(*outage, before) == ["queued", "queued", "failed"]


def test_a_wrong_form_says_what_is_wrong_and_keeps_what_was_typed(integrator, hook):
    page = integrator.post(RECOVER, {"since": SINCE, "limit": 100})
    assert page.status_code == 200
    doc = lxml.html.fromstring(page.content)
    assert "Choose either a webhook or a channel." in doc.xpath("string(//p[@class='errornote'])")
    assert doc.xpath("//input[@name='since']/@value") == [SINCE]

    page = integrator.post(RECOVER, {"webhook": hook.pk, "since": SINCE, "until": "2000-01-01T00:00", "limit": 100})
    assert "The end must come after the start." in page.content.decode()


def test_another_organizations_webhook_cannot_be_chosen(integrator, modules):
    other = OrganizationFactory(name="Other")
    foreign = webhook_create(module=other.modules.get(api_name="Deals"), name="Theirs")
    page = integrator.post(RECOVER, {"webhook": foreign.pk, "since": SINCE, "limit": 100})
    assert "Select a valid choice" in page.content.decode()
    assert delivery_engine.RECOVER_MAX >= 100


def test_a_login_without_the_resend_permission_gets_no_button_and_no_page(client, organization, hook):
    client.force_login(staff_login(organization, "auditor", permissions=("view_delivery",)))
    assert RECOVER not in client.get(reverse("admin:dispatcher_delivery_changelist")).content.decode()
    assert client.get(RECOVER).status_code == 403


def test_a_wrong_filter_in_the_log_url_is_an_error_not_the_whole_log(integrator, hook):
    failed_delivery(webhook=hook)
    changelist = reverse("admin:dispatcher_delivery_changelist")
    for wrong in ({"webhook__id__exact": "abc"}, {"created_at__gte": "yesterday"}, {"webhook__isnull": "maybe"}):
        assert integrator.get(changelist, wrong).url == changelist + "?e=1"
        assert integrator.get(reverse("admin:dispatcher_delivery_export"), wrong).url == changelist + "?e=1"
    assert integrator.get(changelist, {"webhook__id__exact": hook.pk}).context["cl"].result_count == 1
