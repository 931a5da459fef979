"""The API key command 1 prints can do what the REST API page shows: every scope on a fresh demo, and a demo key
made by an older version (records and channels only) is given the rest when the demo is loaded again."""
from crm import services as crm_services
from crm.models import ApiKey, ApiScope, CrmUser
from workflows.demo import demo_load


def test_the_demo_key_has_every_scope(db, client):
    organization, raw = demo_load()
    assert ApiKey.objects.get(organization=organization, name="Demo").scopes == list(ApiScope.values)
    for path in ("deliveries/", "usage/", "webhooks/", "workflow-rules/", "config/", "records/Deals/", "channels/"):
        assert client.get(f"/api/v1/{path}", headers={"X-API-Key": raw}).status_code == 200, path


def test_a_demo_key_from_before_is_given_the_scopes_the_readme_needs_and_keeps_working(db, client):
    organization, _ = demo_load()
    ApiKey.objects.filter(organization=organization, name="Demo").delete()
    owner = CrmUser.objects.filter(organization=organization, is_admin=True).order_by("pk").first()
    _, old_raw = crm_services.api_key_create(user=owner, name="Demo")  # what earlier demos made
    refused = client.get("/api/v1/deliveries/", headers={"X-API-Key": old_raw})
    assert (refused.status_code, refused.json()["required_scope"]) == (403, "deliveries:read")

    assert demo_load() == (organization, None)  # no new key: var/api-key keeps the one printed before

    assert client.get("/api/v1/deliveries/", headers={"X-API-Key": old_raw}).status_code == 200
    assert ApiKey.objects.get(organization=organization, name="Demo").scopes == list(ApiScope.values)
