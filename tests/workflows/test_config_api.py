"""Configuration deployed from CI through the REST API: the same file, checks and all-or-nothing import as
import_config and export_config, limited to the key's organization; webhooks and rules listed read-only."""
import copy
import json

import pytest

from crm import services as crm_services
from crm.models import ApiScope, CrmUser
from dispatcher.models import RetryPolicy, Webhook
from workflows.config_io import config_export_all
from workflows.demo import demo_load
from workflows.models import WorkflowRule


@pytest.fixture
def zylker(db):
    organization, _ = demo_load()
    owner = CrmUser.objects.get(organization=organization, email="ted.watson@zylker.example")
    return organization, crm_services.api_key_create(user=owner, name="CI", scopes=[ApiScope.CONFIG])[1]


@pytest.fixture
def call(client):
    def request(method: str, path: str, key: str, body=None):
        response = client.generic(method, f"/api/v1/{path}", data=json.dumps(body) if body is not None else "",
                                  content_type="application/json", headers={"X-API-Key": key})
        return response.status_code, response.json()

    return request


def test_export_then_import_of_an_unchanged_file_changes_nothing(call, zylker):
    organization, key = zylker
    status, exported = call("GET", "config/", key)
    assert status == 200 and exported == config_export_all(organization=organization)
    assert {w["organization"] for w in exported["webhooks"]} == {organization.name}  # the key's own only
    assert all(w["auth"]["password"] is None for w in exported["webhooks"])  # no secret leaves through the API
    status, report = call("POST", "config/", key, exported)
    assert status == 200 and report["data"]["summary"][-1] == ("Nothing to change: the installation already "
                                                               "matches the file.")


def test_a_change_is_reported_by_a_dry_run_then_imported(call, zylker):
    organization, key = zylker
    _, exported = call("GET", "config/", key)
    changed = copy.deepcopy(exported)
    changed["webhooks"][0]["description"] = "Changed from CI"
    status, report = call("POST", "config/?dry_run=true", key, changed)
    name = changed["webhooks"][0]["name"]
    assert status == 200 and report["data"]["dry_run"] and report["data"]["webhooks"]["updated"] == [name]
    assert Webhook.objects.get(organization=organization, name=name).description != "Changed from CI"
    status, report = call("POST", "config/", key, changed)
    assert status == 200 and f"Changed 1 webhook(s): {name}" in report["data"]["summary"]
    assert Webhook.objects.get(organization=organization, name=name).description == "Changed from CI"


def test_a_bad_file_imports_nothing_and_names_every_problem(call, zylker):
    organization, key = zylker
    _, exported = call("GET", "config/", key)
    bad = copy.deepcopy(exported)
    bad["webhooks"][0]["description"] = "Half imported?"
    bad["webhooks"][1]["module"] = "Notes"
    bad["workflow_rules"].append({**bad["workflow_rules"][0], "organization": "Acme Corp", "name": "Sneaky"})
    bad["retry_policies"].append({"code": "patient", "name": "Patient", "delays": [86400],
                                  "max_retry_after": 3600, "failure_emails": "none"})
    status, problem = call("POST", "config/", key, bad)
    assert (status, problem["code"]) == (422, "invalid_config")
    text = "\n".join(problem["problems"])
    assert "webhooks[1]" in text and "Notes" in text
    assert "workflow_rules[" in text and "entries of other organizations are not imported" in text
    assert "retry_policies “patient”: retry policies are shared by every organization" in text
    assert not Webhook.objects.filter(description="Half imported?").exists()
    assert not RetryPolicy.objects.filter(code="patient").exists() and not WorkflowRule.objects.filter(
        name="Sneaky").exists()
    status, problem = call("POST", "config/", key, {"format": "something else"})
    assert (status, problem["code"]) == (422, "invalid_config")


def test_webhooks_and_rules_are_listed_without_secrets_and_need_the_config_scope(call, zylker):
    organization, key = zylker
    status, listed = call("GET", "webhooks/", key)
    assert status == 200 and {w["name"] for w in listed["data"]} == set(
        Webhook.objects.filter(organization=organization).values_list("name", flat=True))
    assert "password" not in json.dumps(listed) and "signing_secret" not in json.dumps(listed)
    first = listed["data"][0]
    assert call("GET", f"webhooks/{first['id']}/", key) == (200, {"data": first})
    status, rules = call("GET", "workflow-rules/", key)
    assert status == 200 and {r["name"] for r in rules["data"]} == set(
        WorkflowRule.objects.filter(organization=organization).values_list("name", flat=True))
    owner = CrmUser.objects.get(organization=organization, email="ted.watson@zylker.example")
    records_only = crm_services.api_key_create(user=owner, name="Shop")[1]
    for path in ("webhooks/", "workflow-rules/", "config/"):
        status, problem = call("GET", path, records_only)
        assert (status, problem["code"], problem["required_scope"]) == (403, "missing_scope", "config")
