"""Seed 003's two scenarios as its own test steps write them, on the demo rules, through the REST API."""
import datetime
import json
import zoneinfo

import pytest
from django.utils import timezone

from dispatcher.models import Delivery
from workflows import engine
from workflows.demo import demo_load
from workflows.models import ActionRun, RunStatus


@pytest.fixture
def demo(db):
    return demo_load()


def api(client, api_key, method, path, body):
    response = getattr(client, method)(f"/api/v1/records/{path}", data=json.dumps(body),
                                       content_type="application/json", headers={"X-API-Key": api_key})
    assert response.status_code in (200, 201), response.content
    return response.json()["data"]


def commissions() -> list[str]:
    return list(Delivery.objects.filter(webhook__name="Creator sales commission").values_list("record_ref", flat=True))


def test_scenario_1_the_readme_curl_example_creates_a_won_deal_and_the_commission_is_queued(client, demo):
    _, api_key = demo
    # docs/integrate/rest-api.md: curl -X POST …/records/Deals/ -d '{"Deal_Name": "From curl", "Type": "New Business",
    # "Stage": "Closed Won"}' — seed 003, scenario 1, step 4 ("add a test deal").
    deal = api(client, api_key, "post", "Deals/", {"Deal_Name": "From curl", "Type": "New Business",
                                                    "Stage": "Closed Won"})
    assert commissions() == [f"Deals #{deal['id']}"]
    invoice = ActionRun.objects.get(record_id=deal["id"], action__webhook__name="Invoice to accounting")
    assert invoice.status == RunStatus.SCHEDULED  # the rule's time-based action, five minutes later
    api(client, api_key, "patch", f"Deals/{deal['id']}/", {"Amount": "1000"})
    assert commissions() == [f"Deals #{deal['id']}"]  # only the first time the criteria are met


def test_scenario_1_a_deal_that_becomes_closed_won_fires_once_and_other_deals_not_at_all(client, demo):
    _, api_key = demo
    deal = api(client, api_key, "post", "Deals/", {"Deal_Name": "Later", "Type": "New Business",
                                                    "Stage": "Negotiation/Review"})
    existing = api(client, api_key, "post", "Deals/", {"Deal_Name": "Existing", "Type": "Existing Business",
                                                        "Stage": "Closed Won"})
    assert commissions() == []
    api(client, api_key, "patch", f"Deals/{deal['id']}/", {"Stage": "Closed Won"})
    api(client, api_key, "patch", f"Deals/{existing['id']}/", {"Amount": "5"})
    assert commissions() == [f"Deals #{deal['id']}"]


def test_scenario_2_a_deal_due_today_gets_its_sms_today(client, demo):
    organization, api_key = demo
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    today = timezone.now().astimezone(zone).date()
    # Seed 003, scenario 2, step 4: an Existing Business deal whose payment is due today.
    deal = api(client, api_key, "post", "Deals/", {"Deal_Name": "Due today", "Type": "Existing Business",
                                                    "Amount": "7200", "Payment_Due_Date": today.isoformat()})
    run = ActionRun.objects.get(record_id=deal["id"], rule__name="Payment due reminder")
    assert run.status == RunStatus.SCHEDULED and run.due_at.astimezone(zone).date() == today
    # At 09:00 today, or at once when 09:00 has passed: a reminder for today still goes out today.
    assert run.due_at.astimezone(zone).time() == datetime.time(9, 0) or run.due_at <= timezone.now()
    assert engine.runs_fire_due(now=max(run.due_at, timezone.now())) == 1
    assert Delivery.objects.filter(webhook__name="SMS payment reminder", record_id=deal["id"]).count() == 1
