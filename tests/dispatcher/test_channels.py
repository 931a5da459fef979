"""Event subscriptions (channels): the API lifecycle, verification, seed 002's payload, order per record,
expiry and renewal. Notifications go to a real local HTTP server."""
import datetime
import json
import threading

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook
from werkzeug import Response

from crm import services as crm_services
from dispatcher.senders import channels
from dispatcher import delivery as delivery_engine
from dispatcher.models import Channel, DailyUsage, Delivery, DeliverySource, DeliveryStatus
from tests.factories import CrmUserFactory, OrganizationFactory, staff_login

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def key(owner):
    return crm_services.api_key_create(user=owner, name="Integration")[1]


@pytest.fixture
def api(client, key):
    def call(method: str, path: str = "", body=None, *, headers=None):
        headers = {"X-API-Key": key} if headers is None else headers
        response = getattr(client, method.lower())(f"/api/v1/channels/{path}", data=json.dumps(body) if body is not None
                                                   else "", content_type="application/json", headers=headers)
        return response.status_code, response.json()

    return call


@pytest.fixture
def subscribe(api, receiver, modules):
    def create(events, **extra):
        status, body = api("POST", body={"events": events, "notify_url": receiver.url_for("/notify"),
                                         "token": "tok-channel-7", **extra})
        assert status == 201, body
        return body["data"]

    return create


def run_due(now=None) -> list[Delivery]:
    claimed = delivery_engine.deliveries_claim(now=now or timezone.now(), limit=100)
    return [delivery_engine.delivery_attempt(delivery_id=pk, token=token) for pk, token in claimed]


def received(receiver) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in receiver.log]


def test_create_list_read_update_renew_delete(api, subscribe, owner):
    created = subscribe(["Deals.create", "potentials.STAGE.change"], channel_id="10000000068001")
    assert created["id"] == "10000000068001"
    assert created["events"] == ["Deals.create", "Deals.Stage.change"]  # canonical spelling; alias resolved
    assert created["status"] == "active" and created["token_set"] is True and "token" not in created
    assert created["signing_secret"].startswith("whsec_")
    expiry = datetime.datetime.fromisoformat(created["expiry_time"])
    assert 23.9 * HOUR < expiry - timezone.now() <= 24 * HOUR  # default: one day
    status, listed = api("GET")
    assert status == 200 and [c["id"] for c in listed["data"]] == ["10000000068001"]
    assert "signing_secret" not in listed["data"][0]
    status, changed = api("PATCH", "10000000068001/", {"events": ["Deals.all"], "fields": ["amount"]})
    assert status == 200 and changed["data"]["events"] == ["Deals.all"] and changed["data"]["fields"] == ["Amount"]
    later = (timezone.now() + 3 * 24 * HOUR).replace(microsecond=0)
    status, renewed = api("POST", "10000000068001/renew/", {"expiry_time": later.isoformat()})
    assert status == 200 and datetime.datetime.fromisoformat(renewed["data"]["expiry_time"]) == later
    assert Channel.objects.get().owner == owner
    assert api("DELETE", "10000000068001/") == (200, {"data": {"id": "10000000068001", "deleted": True}})
    status, body = api("GET", "10000000068001/")
    assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"events": ["Deals.explode"]}, "events", "the operation must be create, edit (or update), delete or all"),
    ({"events": ["Invoices.create"]}, "events", "there is no module “Invoices”"),
    ({"events": ["Deals.Colour.change"]}, "events", "Deals has no field “Colour”"),
    ({"events": "Deals.create"}, "events", "Give a list of event names"),
    ({"events": ["Deals.create"], "expiry_time": "2099-01-01T00:00:00+00:00"}, "expiry_time", "at most 7 days"),
    ({"events": ["Deals.create"], "expiry_time": "tomorrow"}, "expiry_time", "ISO 8601"),
    ({"events": ["Deals.create"], "fields": ["Nope"]}, "fields", "Not a field of Deals: Nope"),
    ({"events": ["Deals.create"], "notify_url": "http://169.254.169.254/latest"}, "notify_url", "address"),
    ({"events": ["Deals.create"], "token": "x" * 51}, "token", "at most 50 characters"),
    ({"events": ["Deals.create"], "notify_url": "https://hooks.example.com/\u0000x"}, "notify_url",
     "control characters"),
    ({"events": ["Deals.create"], "notify_url": "https://hooks.example.com/\u0007"}, "notify_url",
     "control characters"),
    ({"events": ["Deals.create"], "channel_id": "1000000006800\n"}, "channel_id", "Letters, digits"),
])
def test_invalid_subscriptions_are_400_and_nothing_is_saved(api, receiver, body, field, message):
    status, answer = api("POST", body={"notify_url": receiver.url_for("/notify"), **body})
    assert status == 400 and answer["error"]["code"] == "invalid_fields"
    assert message in " ".join(answer["error"]["fields"][field])
    assert not Channel.objects.exists()


def test_unknown_keys_missing_keys_and_other_organizations(api, subscribe, client):
    status, answer = api("POST", body={"events": ["Deals.create"], "notify": "x"})
    assert status == 400 and answer["error"]["code"] == "unknown_keys"
    assert api("GET", headers={})[0] == 401
    created = subscribe(["Deals.create"])
    stranger = CrmUserFactory(organization=OrganizationFactory())
    other_key = crm_services.api_key_create(user=stranger, name="Other")[1]
    status, answer = api("GET", f"{created['id']}/", headers={"X-API-Key": other_key})
    assert status == 404 and api("GET", headers={"X-API-Key": other_key}) == (200, {"data": [], "next_cursor": None})
    assert api("DELETE", f"{created['id']}/", headers={"X-API-Key": other_key})[0] == 404
    assert Channel.objects.count() == 1


def test_verification_needs_the_challenge_echoed(api, receiver):
    def echo(request):
        from werkzeug import Response
        return Response(json.loads(request.get_data())["challenge"])

    receiver.expect_oneshot_request("/verify").respond_with_handler(echo)
    status, body = api("POST", body={"events": ["Leads.create"], "notify_url": receiver.url_for("/verify"),
                                     "verify": True})
    assert status == 201 and body["data"]["verified"] is True
    challenge = json.loads(receiver.log[0][0].get_data())
    assert challenge["type"] == "verification" and challenge["channel"]["id"] == body["data"]["id"]
    receiver.expect_oneshot_request("/deaf").respond_with_json({"ok": True})
    status, body = api("POST", body={"events": ["Leads.create"], "notify_url": receiver.url_for("/deaf"),
                                     "verify": True})
    assert status == 400 and "did not contain the challenge" in body["error"]["fields"]["notify_url"][0]
    assert Channel.objects.count() == 1  # the failed one was not kept


def test_a_hanging_notify_url_fails_verification_at_the_short_deadline(api, receiver, settings):
    settings.CHANNEL_VERIFY_TIMEOUT = 0.5
    released = threading.Event()

    def hang(request):
        released.wait(60)
        return Response("late")

    receiver.expect_request("/hang").respond_with_handler(hang)
    try:
        status, body = api("POST", body={"events": ["Leads.create"], "notify_url": receiver.url_for("/hang"),
                                         "verify": True})
    finally:
        released.set()
    assert status == 400
    assert body["error"]["fields"]["notify_url"] == [
        "Verification failed: Error code 1: the receiver did not answer in time."]
    assert not Channel.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # as every transactional test here
def test_verification_runs_outside_any_transaction_and_is_charged_to_the_quota(api, receiver, monkeypatch,
                                                                                 organization):
    seen = []
    real = channels.send_now

    def probe(request, **kwargs):  # the real client, watched: was a transaction open while it waited?
        seen.append(connection.in_atomic_block)
        return real(request, **kwargs)

    monkeypatch.setattr(channels, "send_now", probe)
    receiver.expect_request("/verify").respond_with_handler(
        lambda request: Response(json.loads(request.get_data())["challenge"]))
    status, _ = api("POST", body={"events": ["Leads.create"], "notify_url": receiver.url_for("/verify"),
                                  "verify": True})
    assert status == 201 and seen == [False]
    assert DailyUsage.objects.get(organization=organization).calls == 1
    DailyUsage.objects.update(calls=10 ** 6)  # the day's quota used up
    status, body = api("POST", body={"events": ["Leads.create"], "notify_url": receiver.url_for("/verify"),
                                     "verify": True})
    assert status == 400 and "daily limit of webhook calls is reached" in body["error"]["fields"]["notify_url"][0]
    assert len(receiver.log) == 1


def test_channels_per_event_and_per_organization_are_limited(subscribe, api, receiver, settings):
    settings.CHANNEL_MAX_PER_EVENT, settings.CHANNEL_MAX_PER_ORGANIZATION = 2, 3
    subscribe(["Deals.create"])
    subscribe(["Deals.all"])  # all: create, edit and delete
    status, body = api("POST", body={"events": ["Deals.create"], "notify_url": receiver.url_for("/notify")})
    assert status == 400 and "Deals.create: already watched by 2 channels" in body["error"]["fields"]["events"][0]
    subscribe(["Leads.create"])
    status, body = api("POST", body={"events": ["Contacts.create"], "notify_url": receiver.url_for("/notify")})
    assert status == 400 and "has 3 active channels, the most it may have" in body["error"]["message"] + json.dumps(
        body["error"].get("fields", {}))
    assert Channel.objects.count() == 3


def test_seed_002s_event_names_are_accepted_in_any_case_and_update_means_edit(receiver, subscribe, owner, modules,
                                                                             settings):
    settings.SITE_URL = "http://crm.example:9000/"
    created = subscribe(["Leads.update", "LEADS.Create", "leads.DELETE"])
    assert created["events"] == ["Leads.edit", "Leads.create", "Leads.delete"]
    receiver.expect_request("/notify").respond_with_data("OK")
    lead = crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "Jansen"})
    crm_services.record_update(record=lead, values={"Company": "Bakkerij"})
    for _ in range(2):
        run_due()
    create, edit = received(receiver)
    assert (create["operation"], edit["operation"], edit["events"]) == ("create", "edit", ["Leads.edit"])
    assert edit["resource_uri"] == f"http://crm.example:9000/api/v1/records/Leads/{lead.pk}/"


def test_notifications_have_seed_002s_shape_and_are_signed(receiver, subscribe, owner, modules):
    receiver.expect_request("/notify").respond_with_data("OK")
    created = subscribe(["Deals.create", "Deals.edit", "Deals.Stage.change", "Deals.delete"])
    deal = crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Website", "Stage": "Qualification"})
    crm_services.record_update(record=deal, values={"Stage": "Closed Won"})
    deal_id = deal.pk
    crm_services.record_delete(record=deal)
    for _ in range(3):  # one per pass: the events of one record go in order
        run_due()
    create, edit, delete = received(receiver)
    assert set(create) == {"module", "operation", "ids", "resource_uri", "token", "channel", "events", "data"}
    assert create["module"] == "Deals" and create["operation"] == "create" and create["ids"] == [str(deal_id)]
    assert create["resource_uri"] == f"http://127.0.0.1:8000/api/v1/records/Deals/{deal_id}/"
    assert create["token"] == "tok-channel-7"
    assert create["channel"] == {"id": created["id"], "expiry_time": created["expiry_time"]}
    assert create["data"]["Deal_Name"] == "Website" and create["data"]["id"] == str(deal_id)
    assert create["data"]["Owner"] == {"id": str(owner.pk), "name": "Ted Watson"}
    assert edit["operation"] == "edit" and edit["events"] == ["Deals.edit", "Deals.Stage.change"]
    assert edit["affected_fields"] == ["Stage"] and edit["data"]["Stage"] == "Closed Won"
    assert delete["operation"] == "delete" and delete["data"]["Stage"] == "Closed Won"
    request = receiver.log[0][0]
    assert StandardWebhook(created["signing_secret"]).verify(request.get_data(), dict(request.headers)) == create
    logged = Delivery.objects.filter(source=DeliverySource.SUBSCRIPTION)
    assert [d.status for d in logged] == [DeliveryStatus.SUCCESS] * 3
    assert all("tok-channel-7" not in d.request_display for d in logged)
    assert logged.first().webhook_name == f"Channel {created['id']}"


def test_field_filter_and_field_change_events(receiver, subscribe, owner, modules):
    receiver.expect_request("/notify").respond_with_data("OK")
    subscribe(["Deals.edit"], fields=["Amount"])
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "A"})
    crm_services.record_update(record=deal, values={"Deal_Name": "B"})  # not a watched field
    assert not Delivery.objects.exists()
    crm_services.record_update(record=deal, values={"Amount": "10"})
    run_due()
    [edit] = received(receiver)
    assert edit["affected_fields"] == ["Amount"] and edit["events"] == ["Deals.edit"]


def test_events_of_one_record_arrive_in_order_even_through_retries(receiver, subscribe, owner, modules):
    from werkzeug import Response

    subscribe(["Leads.all"])
    lead = crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "One"})
    other = crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "Other"})
    crm_services.record_update(record=lead, values={"Last_Name": "Two"})
    failed_once = []

    def busy_once_for_the_leads_create(request):
        notification = json.loads(request.get_data())
        if notification["ids"] == [str(lead.pk)] and not failed_once:
            failed_once.append(notification["operation"])
            return Response("busy", status=503)
        return Response("OK")

    receiver.expect_request("/notify").respond_with_handler(busy_once_for_the_leads_create)
    first = run_due()  # the lead's create (fails) and the other lead's create; the lead's edit waits
    assert sorted(d.record_id for d in first) == [lead.pk, other.pk] and failed_once == ["create"]
    assert run_due(timezone.now() + datetime.timedelta(minutes=5)) == []  # the edit still waits for the create
    [retried] = run_due(timezone.now() + datetime.timedelta(minutes=17))  # 15 min ±10 %
    assert retried.status == DeliveryStatus.SUCCESS and retried.trigger == "Leads.all"
    [edit] = run_due(timezone.now() + datetime.timedelta(minutes=17))
    assert edit.status == DeliveryStatus.SUCCESS
    lead_events = [(n["operation"], n["data"]["Last_Name"]) for n in received(receiver) if n["ids"] == [str(lead.pk)]]
    assert lead_events == [("create", "One"), ("create", "One"), ("edit", "Two")]


def test_expired_channels_stop_and_can_no_longer_be_renewed(api, receiver, subscribe, owner, modules):
    created = subscribe(["Leads.create"])
    Channel.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "Late"})
    assert not Delivery.objects.exists()
    status, body = api("GET", f"{created['id']}/")
    assert body["data"]["status"] == "expired"
    status, body = api("POST", f"{created['id']}/renew/")
    assert status == 409 and body["error"]["code"] == "channel_expired"


def test_owner_is_told_once_shortly_before_expiry_and_renewal_resets_it(api, subscribe, owner):
    created = subscribe(["Leads.create"])
    assert channels.channels_expiry_notify() == 0  # a day ahead: too early
    soon = timezone.now() + datetime.timedelta(hours=23)
    assert channels.channels_expiry_notify(now=soon) == 1
    assert channels.channels_expiry_notify(now=soon) == 0
    [message] = mail.outbox
    assert message.to == [owner.email] and created["id"] in message.subject and "renew" in message.body
    api("POST", f"{created['id']}/renew/")
    assert channels.channels_expiry_notify(now=soon) == 1  # the renewed expiry gets its own notice


def test_a_deleted_channels_pending_notifications_are_cancelled_with_the_reason(api, receiver, subscribe, owner,
                                                                                 modules):
    created = subscribe(["Leads.create"])
    crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "X"})
    api("DELETE", f"{created['id']}/")
    [delivery] = run_due()
    assert delivery.status == DeliveryStatus.CANCELLED and "channel was deleted" in delivery.status_reason
    assert receiver.log == []


def test_deactivated_channels_receive_nothing(api, receiver, subscribe, owner, modules):
    created = subscribe(["Leads.create"])
    status, body = api("PATCH", f"{created['id']}/", {"active": False})
    assert status == 200 and body["data"]["status"] == "inactive"
    crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "X"})
    assert not Delivery.objects.exists()


def test_channels_admin_lists_channels_for_auditors_without_tokens(admin_client, subscribe):
    created = subscribe(["Leads.create"])
    page = admin_client.get("/admin/dispatcher/channel/").content.decode()
    assert created["id"] in page and "Leads.create" in page
    url = f"/admin/dispatcher/channel/{Channel.objects.get().pk}/change/"
    detail = admin_client.get(url).content.decode()
    # Whoever may change the channel sees its signing secret (to rotate it); nobody sees the token.
    assert "tok-channel-7" not in detail and created["signing_secret"] in detail
    admin_client.force_login(staff_login(Channel.objects.get().organization, "auditor", group="Auditor"))
    detail = admin_client.get(url).content.decode()
    assert created["id"] in detail
    assert "tok-channel-7" not in detail and created["signing_secret"] not in detail
