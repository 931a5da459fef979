"""Seed 003's two business scenarios, end to end: REST API -> workflow rule -> delivery queue -> worker -> receiver."""
import datetime
import json
import zoneinfo

import pytest
from lxml import etree

from crm.models import Record
from dispatcher.models import Delivery, Webhook
from dispatcher.rendering.xml import safe_parser
from tests.e2e.conftest import wait_for
from workflows import engine
from workflows.demo import demo_load
from workflows.models import ActionRun

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
THROUGH_PGBOUNCER = True  # tests/e2e/conftest.py: on the PgBouncer stack too


@pytest.fixture
def demo(receiver):
    organization, api_key = demo_load()
    Webhook.objects.filter(organization=organization).update(url=receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("<response><status>ok</status></response>",
                                                       content_type="application/xml")
    return organization, api_key


def api(client, api_key, method, path, body):
    response = getattr(client, method)(f"/api/v1/records/{path}", data=json.dumps(body),
                                       content_type="application/json", headers={"X-API-Key": api_key})
    assert response.status_code in (200, 201), response.content
    return response.json()["data"]


def test_scenario_1_won_new_business_deal_records_the_commission_in_creator(start_worker, receiver, client, demo):
    organization, api_key = demo
    start_worker()
    account = Record.objects.get(module__organization=organization, values__Account_Name="Zylker Systems")
    # Seed 003, scenario 1, step 4: add a test deal with Type New Business and Stage Closed Won.
    deal = api(client, api_key, "post", "Deals/", {
        "Deal_Name": "Intranet & <portal>", "Amount": "48000", "Closing_Date": "2026-12-01", "Type": "New Business",
        "Stage": "Closed Won", "Account_Name": account.pk,
    })
    delivery = Delivery.objects.get(webhook__name="Creator sales commission")
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "success", what="the commission webhook")
    [(request, _)] = receiver.log
    assert dict(request.args) == {"authtoken": "demo-creator-token-123", "zc_ownername": "zylker"}
    root = etree.fromstring(request.get_data(), parser=safe_parser())
    fields = {f.get("name"): f.findtext("value") for f in root.iter("field")}
    assert fields == {"Name": "Intranet & <portal>", "Closed_Amount": "48000.00", "Closing_Date": "2026-12-01",
                      "Customer_Name": "Zylker Systems", "Type_of_Business": "New Business",
                      "Sales_Rep": "Patricia Boyle"}
    api(client, api_key, "patch", f"Deals/{deal['id']}/", {"Amount": "49000"})  # edited again: no second commission
    assert Delivery.objects.filter(webhook__name="Creator sales commission").count() == 1


def test_scenario_2_time_based_sms_on_the_payment_due_date(start_worker, receiver, client, demo):
    organization, api_key = demo
    start_worker()
    due_date = datetime.date.today() + datetime.timedelta(days=30)
    contact = Record.objects.get(module__organization=organization, values__Last_Name="de Vries")
    deal = api(client, api_key, "post", "Deals/", {
        "Deal_Name": "Support renewal", "Amount": "7200", "Type": "Existing Business", "Stage": "Closed Won",
        "Payment_Due_Date": due_date.isoformat(), "Account_Name": contact.values["Account_Name"],
        "Contact_Name": contact.pk,
    })
    run = ActionRun.objects.get(rule__name="Payment due reminder", record_id=deal["id"])
    local = run.due_at.astimezone(zoneinfo.ZoneInfo(organization.time_zone))
    assert (local.date(), local.time()) == (due_date, datetime.time(9, 0))
    assert engine.runs_fire_due(now=run.due_at - datetime.timedelta(minutes=1)) == 0
    assert receiver.log == []
    # The controllable clock: the engine is asked what is due at 09:01 on the due date.
    assert engine.runs_fire_due(now=run.due_at + datetime.timedelta(minutes=1)) == 1
    delivery = Delivery.objects.get(webhook__name="SMS payment reminder")
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "success", what="the SMS webhook")
    [(request, _)] = receiver.log
    message = etree.fromstring(request.get_data(), parser=safe_parser()).find("{http://www.defns.com}Message")
    assert message.get("mobilenumber") == "+31 6 1234 5678"
    assert message.text == ("Hello Boyle, the payment of 7200.00 from Zylker Systems is due today. "
                            "Please contact de Vries as soon as possible.")
