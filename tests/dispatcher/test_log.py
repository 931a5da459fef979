"""The delivery log: filters, search by delivery id, CSV export, resend, retention."""
import csv
import datetime
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import purge
from dispatcher.models import Delivery
from tests.factories import staff_login, webhook_create


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


@pytest.fixture
def log(receiver, owner, modules):
    """Three deliveries: one success (200), one failed (404), one refused by the limit of a tiny edition."""
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    ok = webhook_create(module=modules["Deals"], name="Ok", url=receiver.url_for("/ok"), entity=[("a", "b")],
                        custom=[("token", "tok-secret-9")])
    gone = webhook_create(module=modules["Deals"], name="Gone", url=receiver.url_for("/gone"))
    receiver.expect_request("/ok").respond_with_data("fine")
    receiver.expect_request("/gone").respond_with_data("no", status=404)
    first = delivery_engine.delivery_enqueue(webhook=ok, record=deal)
    second = delivery_engine.delivery_enqueue(webhook=gone, record=deal)
    delivery_engine.deliveries_drain(batch=10, budget_seconds=30)
    return Delivery.objects.get(pk=first.pk), Delivery.objects.get(pk=second.pk)


def test_filters_and_search_by_delivery_id(admin_client, log):
    ok, failed = log
    changelist = reverse("admin:dispatcher_delivery_changelist")
    assert admin_client.get(changelist, {"http": "4"}).context["cl"].result_count == 1
    assert admin_client.get(changelist, {"http": "2"}).context["cl"].result_count == 1
    assert admin_client.get(changelist, {"webhook__id__exact": ok.webhook_id}).context["cl"].result_count == 1
    found = admin_client.get(changelist, {"q": failed.message_id}).context["cl"].result_list
    assert list(found) == [failed]
    assert admin_client.get(changelist, {"q": "/gone"}).context["cl"].result_count == 1  # by URL


def test_csv_export_follows_the_filters_and_holds_no_secret(admin_client, log):
    ok, failed = log
    response = admin_client.get(reverse("admin:dispatcher_delivery_export"), {"status__exact": "failed"})
    assert response["Content-Type"] == "text/csv; charset=utf-8" and response.streaming
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["created", "delivery id", "organization"]
    assert [row[1] for row in rows[1:]] == [failed.message_id]
    assert rows[1][7:11] == ["Failed", "404 Not found: the requested item does not exist; not retried: 404.", "404",
                            "http_404"]
    assert "tok-secret-9" not in text


def test_resend_from_a_list_filtered_on_failed_counts_what_was_resent(admin_client, log):
    _, failed = log
    changelist = reverse("admin:dispatcher_delivery_changelist") + "?status__exact=failed"
    response = admin_client.post(changelist, {"action": "resend", "_selected_action": [failed.pk]}, follow=True)
    page = response.content.decode()
    assert "1 deliveries queued again with their delivery id." in page and "not resent" not in page


def test_resend_uses_the_same_id_and_starts_the_retry_policy_again(admin_client, log, receiver):
    ok, failed = log
    changelist = reverse("admin:dispatcher_delivery_changelist")
    response = admin_client.post(changelist, {"action": "resend", "_selected_action": [ok.pk, failed.pk]},
                                 follow=True)
    assert "1 deliveries queued again with their delivery id; 1 not resent" in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.resent_by, failed.cycle_start) == ("queued", "boss", 1)
    receiver.clear_all_handlers()
    receiver.expect_request("/gone").respond_with_data("", status=503)
    delivery_engine.deliveries_drain(batch=10, budget_seconds=30)
    failed.refresh_from_db()
    assert failed.status == "retry"  # a new cycle: the Zoho profile's one retry is available again
    assert [r.headers["webhook-id"] for r, _ in receiver.log[-1:]] == [failed.message_id]
    assert list(failed.attempts.values_list("number", flat=True)) == [1, 2]
    from dispatcher.models import UsageCounter

    assert UsageCounter.objects.get(source="replay").outcome == "retry"  # the chart shows resends apart


def test_an_auditor_without_the_resend_permission_cannot_resend(client, django_user_model, log):
    client.force_login(staff_login(log[0].organization, "auditor", permissions=("view_delivery",)))
    ok, failed = log
    changelist = reverse("admin:dispatcher_delivery_changelist")
    assert "resend" not in client.get(changelist).context["cl"].model_admin.get_actions(
        client.get(changelist).wsgi_request)
    client.post(changelist, {"action": "resend", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.status == "failed"


def test_old_ended_deliveries_are_purged_in_batches(log, monkeypatch):
    ok, failed = log
    Delivery.objects.filter(pk=ok.pk).update(finished_at=timezone.now() - datetime.timedelta(days=91))
    monkeypatch.setattr(purge, "PURGE_BATCH", 1)
    assert delivery_engine.deliveries_purge(older_than_days=90) == 1
    assert list(Delivery.objects.values_list("pk", flat=True)) == [failed.pk]


def test_usage_is_counted_as_it_happens_and_charted(admin_client, log, organization):
    from dispatcher.models import UsageCounter
    from dispatcher.ops.usage import usage_last_days

    counted = {(c.source, c.outcome): c.calls for c in UsageCounter.objects.all()}
    assert counted == {("workflow", "success"): 1, ("workflow", "failed"): 1}
    data = usage_last_days(organization=organization, now=timezone.now())
    assert len(data["labels"]) == 7
    assert data["totals"][-1] == 2 and data["quota"] == 5000
    assert data["by_outcome"] == {"Success": [0] * 6 + [1], "Failed": [0] * 6 + [1]}
    weekly = usage_last_days(organization=organization, now=timezone.now(), weekly=True)
    assert weekly["totals"][-1] == 2 and weekly["quota"] == 35000
    page = admin_client.get(reverse("admin:dispatcher_usage_chart"), {"organization": organization.pk})
    html = page.content.decode()
    assert "chart-4.6.1.umd.min.js" in html and 'id="usage-data"' in html
    assert "Workflow rule: 2" in html and "Success: 1" in html and "Failed: 1" in html


def test_attempts_have_their_own_read_only_list_and_deliveries_show_duration(admin_client, log):
    ok, failed = log
    assert ok.last_duration_ms is not None
    listing = admin_client.get(reverse("admin:dispatcher_attempt_changelist"), {"error_class": "http_404"})
    assert listing.context["cl"].result_count == 1
    attempt = failed.attempts.get()
    page = admin_client.get(reverse("admin:dispatcher_attempt_change", args=[attempt.pk])).content.decode()
    assert "404 Not found: the requested item does not exist." in page
    assert admin_client.get(reverse("admin:dispatcher_attempt_add")).status_code == 403
