"""One read path for the delivery log: dispatcher.selectors.deliveries_list with DeliveryFilters selects what
the admin's list and its CSV export show for the same filters (every filter the admin offers, as its query
parameters), and what the REST API lists for the filters it takes."""
import csv
import datetime
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from crm import services as crm_services
from crm.models import ApiScope
from dispatcher.models import Delivery, DeliverySource, DeliveryStatus, RetryPolicy
from dispatcher.selectors import DeliveryFilters, deliveries_list
from dispatcher.senders import channels
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create

NOW = timezone.now().replace(microsecond=0)


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


@pytest.fixture
def log(owner, modules):
    """Deliveries that differ in every filtered column, and one of another organization, by name."""
    organization = owner.organization
    books = webhook_create(module=modules["Deals"], name="Books")
    crm = webhook_create(module=modules["Contacts"], name="Contacts sync")
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    channel = channels.channel_create(organization=organization, owner=owner, events=["Deals.create"],
                                      notify_url="https://receiver.example/notify")
    stranger = CrmUserFactory(organization=OrganizationFactory())
    elsewhere = webhook_create(module=stranger.organization.modules.get(api_name="Deals"), name="Books")
    rows = {
        "timeout": dict(webhook=books, record=deal, record_ref="Deals #website", status=DeliveryStatus.FAILED,
                        last_error_class="timeout", trigger="Big deal: create", hours=5),
        "server error": dict(webhook=books, record_ref="Deals #7", status=DeliveryStatus.FAILED, last_status_code=503,
                             last_error_class="http_5xx", trigger="Big deal: edit", source=DeliverySource.REPLAY,
                             hours=4),
        "ok": dict(webhook=crm, record_ref="Contacts #8", status=DeliveryStatus.SUCCESS, last_status_code=200,
                   trigger="Contact: create", source=DeliverySource.API, hours=3,
                   request_display="POST https://receiver.example/crm\n\nneedle-in-the-body"),
        "notification": dict(channel=channel, record=deal, record_ref="Deals #website", status=DeliveryStatus.FAILED,
                             last_status_code=404, last_error_class="http_4xx", trigger="Deals.create",
                             source=DeliverySource.SUBSCRIPTION, hours=2),
        "orphan": dict(webhook_name="Deleted hook", record_ref="Deals #9", status=DeliveryStatus.CANCELLED,
                       trigger="Big deal: create", hours=1),
        "elsewhere": dict(webhook=elsewhere, organization=stranger.organization, record_ref="Deals #1",
                          status=DeliveryStatus.FAILED, last_status_code=503, last_error_class="http_5xx",
                          trigger="Big deal: create", hours=4),
    }
    made = {}
    for name, row in rows.items():
        hours = row.pop("hours")
        row.setdefault("organization", organization)
        sender = row.get("webhook") or row.get("channel")
        row.setdefault("webhook_name", sender.name if row.get("webhook") else getattr(sender, "public_id", ""))
        delivery = Delivery.objects.create_historical(retry_policy_id=RetryPolicy.default_id(), **row)
        Delivery.objects.filter(pk=delivery.pk).update(created_at=NOW - datetime.timedelta(hours=hours))
        made[name] = Delivery.objects.get(pk=delivery.pk)
    return made


# (the admin's query parameters, the same as DeliveryFilters, the deliveries a superuser sees)
ADMIN_CASES = [
    ({}, {}, {"timeout", "server error", "ok", "notification", "orphan", "elsewhere"}),
    ({"status__exact": "failed"}, {"status": ["failed"]}, {"timeout", "server error", "notification", "elsewhere"}),
    ({"source__exact": "replay"}, {"source": "replay"}, {"server error"}),
    ({"http": "5"}, {"status_class": "5"}, {"server error", "elsewhere"}),
    ({"http": "4"}, {"status_class": "4"}, {"notification"}),
    ({"http": "2"}, {"status_class": "2"}, {"ok"}),
    ({"http": "none"}, {"status_class": "none"}, {"timeout", "orphan"}),
    ({"webhook__isnull": "True"}, {"no_webhook": True}, {"notification", "orphan"}),
    ({"channel__isnull": "True", "status__exact": "failed"}, {"no_channel": True, "status": ["failed"]},
     {"timeout", "server error", "elsewhere"}),
    ({"trigger": "Big deal: create"}, {"trigger": "Big deal: create"}, {"timeout", "orphan", "elsewhere"}),
    ({"module": "Contacts"}, {"module": "Contacts"}, {"ok"}),
    ({"q": "website"}, {"search": "website"}, {"timeout", "notification"}),
    ({"q": "big create"}, {"search": "big create"}, {"timeout", "orphan", "elsewhere"}),
    ({"q": '"deal: edit"'}, {"search": '"deal: edit"'}, {"server error"}),
    ({"q": "needle-in-the-body"}, {"search": "needle-in-the-body"}, {"ok"}),
    ({"created_at__gte": (NOW - datetime.timedelta(hours=4, minutes=30)).isoformat(),
      "created_at__lt": (NOW - datetime.timedelta(hours=1, minutes=30)).isoformat()},
     {"created_after": NOW - datetime.timedelta(hours=4, minutes=30),
      "created_before": NOW - datetime.timedelta(hours=1, minutes=30)},
     {"server error", "ok", "notification", "elsewhere"}),
]


def ids_of(made: dict[str, Delivery], names: set[str]) -> set[int]:
    return {made[name].pk for name in names}


def csv_ids(response) -> set[str]:
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    return {row[1] for row in rows[1:]}


@pytest.mark.parametrize(("admin_query", "fields", "expected"), ADMIN_CASES)
def test_the_admin_list_and_csv_export_show_what_the_selector_selects(admin_client, log, admin_query, fields,
                                                                      expected):
    selected = deliveries_list(organization=None, filters=DeliveryFilters(**fields))
    assert set(selected.values_list("pk", flat=True)) == ids_of(log, expected)
    listed = admin_client.get(reverse("admin:dispatcher_delivery_changelist"), admin_query).context["cl"]
    assert set(listed.queryset.values_list("pk", flat=True)) == ids_of(log, expected)
    exported = admin_client.get(reverse("admin:dispatcher_delivery_export"), admin_query)
    assert csv_ids(exported) == {log[name].message_id for name in expected}


def test_the_admin_filters_by_object_as_the_selector_does(admin_client, log):
    """The filters whose values are ids of the day (a webhook, a channel, an organization)."""
    webhook, channel = log["timeout"].webhook_id, log["notification"].channel_id
    stranger = log["elsewhere"].organization
    cases = [({"webhook__id__exact": webhook}, dict(filters=DeliveryFilters(webhook=webhook)),
              {"timeout", "server error"}),
             ({"channel__id__exact": channel}, dict(filters=DeliveryFilters(channel_pk=channel)), {"notification"}),
             ({"organization__id__exact": stranger.pk}, dict(organization=stranger, filters=DeliveryFilters()),
              {"elsewhere"}),
             ({"q": log["ok"].message_id}, dict(filters=DeliveryFilters(search=log["ok"].message_id)), {"ok"}),
             ({"q": str(log["ok"].public_id)}, dict(filters=DeliveryFilters(search=str(log["ok"].public_id))), {"ok"})]
    for admin_query, selector, expected in cases:
        selected = deliveries_list(**{"organization": None, **selector})
        assert set(selected.values_list("pk", flat=True)) == ids_of(log, expected), admin_query
        listed = admin_client.get(reverse("admin:dispatcher_delivery_changelist"), admin_query).context["cl"]
        assert set(listed.queryset.values_list("pk", flat=True)) == ids_of(log, expected), admin_query


@pytest.mark.parametrize(("query", "fields", "expected"), [
    ({}, {}, {"timeout", "server error", "ok", "notification", "orphan"}),
    ({"status": ["failed", "cancelled"]}, {"status": ["failed", "cancelled"]},
     {"timeout", "server error", "notification", "orphan"}),
    ({"source": "api"}, {"source": "api"}, {"ok"}),
    ({"error_class": "http_5xx"}, {"error_class": "http_5xx"}, {"server error"}),
    ({"created_after": (NOW - datetime.timedelta(hours=3)).isoformat()},
     {"created_after": NOW - datetime.timedelta(hours=3)}, {"ok", "notification", "orphan"}),
    ({"created_before": (NOW - datetime.timedelta(hours=4)).isoformat()},
     {"created_before": NOW - datetime.timedelta(hours=4)}, {"timeout"}),
    ({"error_class": "http_5xx\x00"}, {"error_class": "http_5xx\x00"}, set()),  # a NUL matches nothing
])
def test_the_api_lists_what_the_selector_selects(client, owner, log, query, fields, expected):
    key = crm_services.api_key_create(user=owner, name="Reader", scopes=[ApiScope.DELIVERIES_READ])[1]
    selected = deliveries_list(organization=owner.organization, filters=DeliveryFilters(**fields))
    assert set(selected.values_list("pk", flat=True)) == ids_of(log, expected)
    response = client.get("/api/v1/deliveries/", query, headers={"X-API-Key": key})
    assert response.status_code == 200, response.json()
    assert {d["id"] for d in response.json()["data"]} == {log[name].message_id for name in expected}


def test_the_api_filters_by_object_as_the_selector_does(client, owner, log):
    key = crm_services.api_key_create(user=owner, name="Reader", scopes=[ApiScope.DELIVERIES_READ])[1]
    channel = log["notification"].channel
    cases = [({"webhook": log["ok"].webhook_id}, DeliveryFilters(webhook=log["ok"].webhook_id), {"ok"}),
             ({"channel": channel.public_id}, DeliveryFilters(channel=channel.public_id), {"notification"}),
             ({"record": log["timeout"].record_id}, DeliveryFilters(record=log["timeout"].record_id),
              {"timeout", "notification"}),
             ({"webhook": log["elsewhere"].webhook_id}, DeliveryFilters(webhook=log["elsewhere"].webhook_id), set())]
    for query, filters, expected in cases:
        selected = deliveries_list(organization=owner.organization_id, filters=filters)
        assert set(selected.values_list("pk", flat=True)) == ids_of(log, expected), query
        listed = client.get("/api/v1/deliveries/", query, headers={"X-API-Key": key}).json()["data"]
        assert {d["id"] for d in listed} == {log[name].message_id for name in expected}, query


def test_the_list_is_newest_first_and_leaves_the_request_out_until_read(owner, log):
    selected = list(deliveries_list(organization=owner.organization, filters=DeliveryFilters()))
    assert [d.pk for d in selected] == sorted((d.pk for d in selected), reverse=True)
    assert {"request_sealed", "request_display"} <= selected[0].get_deferred_fields()

