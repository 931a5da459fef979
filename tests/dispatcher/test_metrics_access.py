"""Who reads which /metrics (issue 25): the installation's view, with every organization's name and quota
and the engine, only for the metrics token and superusers; an organization's staff see their own series."""
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import EngineCounter
from tests.factories import CrmUserFactory, OrganizationFactory, staff_login, webhook_create


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def two_organizations(db, receiver, settings):
    """Zylker (2 deliveries sent, 1 waiting) and Acme (1 sent), each with its own name in the quota series."""
    settings.METRICS_TOKEN = "scrape-me"
    receiver.expect_request("/hook").respond_with_data("OK")
    made = {}
    for name, sent in (("Zylker Corp", 2), ("Acme Secret Project", 1)):
        organization = OrganizationFactory(name=name)
        module = organization.modules.get(api_name="Deals")
        hook = webhook_create(module=module, name="Books", url=receiver.url_for("/hook"),
                              entity=[("deal", "${Deals.Deal Name}")])
        deal = crm_services.record_create(module=module, owner=CrmUserFactory(organization=organization),
                                          values={"Deal_Name": "Website"})
        for _ in range(sent):
            delivery_engine.delivery_enqueue(webhook=hook, record=deal)
        for pk, token in delivery_engine.deliveries_claim(now=timezone.now(), limit=100):
            delivery_engine.delivery_attempt(delivery_id=pk, token=token)
        made[name] = (organization, hook, deal)
    zylker, hook, deal = made["Zylker Corp"]
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)  # due, not claimed
    EngineCounter.objects.create(decision="claim_lost", outcome="", count=3)
    return made


def scrape(client, **headers) -> tuple[int, dict, str]:
    response = client.get("/metrics", headers=headers)
    text = response.content.decode() if response.status_code == 200 else ""
    return response.status_code, samples(text) if text else {}, text


def test_the_token_and_superusers_see_the_whole_installation(client, two_organizations):
    status, found, text = scrape(client, Authorization="Bearer scrape-me")
    assert status == 200
    assert found[("webhook_quota_used", (("organization", "Zylker Corp"),))] == 2
    assert found[("webhook_quota_used", (("organization", "Acme Secret Project"),))] == 1
    assert found[("webhook_attempts_total", (("outcome", "success"), ("source", "workflow")))] == 3
    assert found[("webhook_engine_decisions_total", (("decision", "claim_lost"), ("outcome", "")))] == 3
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    as_superuser = scrape(client)[1]
    assert as_superuser.keys() == found.keys()  # the same series (the oldest due age has grown meanwhile)
    assert as_superuser[("webhook_quota_used", (("organization", "Acme Secret Project"),))] == 1


def test_an_organizations_staff_see_only_their_organization(client, two_organizations):
    zylker, _, _ = two_organizations["Zylker Corp"]
    client.force_login(staff_login(zylker, "auditor", group="Auditor"))
    status, found, text = scrape(client)
    assert status == 200
    assert "Acme Secret Project" not in text  # another organization's name, and so its quota, is not shown
    assert [labels for name, labels in found if name == "webhook_quota_used"] == [(("organization", "Zylker Corp"),)]
    assert found[("webhook_quota_used", (("organization", "Zylker Corp"),))] == 2
    assert found[("webhook_attempts_total", (("outcome", "success"), ("source", "workflow")))] == 2
    assert found[("webhook_deliveries_pending", (("status", "queued"),))] == 1
    assert found[("webhook_queue_depth", ())] == 1
    assert "webhook_engine_decisions_total" not in text  # the engine is the installation's
    assert "webhook_requests_in_flight" not in text


def test_staff_of_no_organization_see_nothing_and_others_are_refused(client, two_organizations, django_user_model):
    from django.contrib.auth.models import Group

    lone = django_user_model.objects.create_user("lone", password="x", is_staff=True)
    lone.groups.add(Group.objects.get(name="Auditor"))
    client.force_login(lone)
    status, found, text = scrape(client)
    assert status == 200 and "organization=" not in text and found[("webhook_queue_depth", ())] == 0
    client.force_login(django_user_model.objects.create_user("plain", password="x", is_staff=True))
    assert scrape(client)[0] == 401  # staff who may not read the log
