"""A large configuration file is imported by a worker, not within the web request (issue 25): POST /config/
answers 202 with a job, GET /config/imports/{id}/ shows it pending, then done with its counts and report,
or failed with every problem; the file's secrets are not kept once it ends."""
import datetime
import json

import pytest
from django.utils import timezone

from crm import services as crm_services
from crm.models import ApiScope
from dispatcher.models import Webhook
from tests.factories import CrmUserFactory, OrganizationFactory
from workflows.config_io import JOB_TIME_LIMIT_SECONDS, config_import_job_run
from workflows.models import ConfigImportJob, ImportStatus


@pytest.fixture
def key(owner, settings):
    settings.CONFIG_IMPORT_SYNC_MAX_ENTRIES = 3  # a "large" file is one of four entries here
    return crm_services.api_key_create(user=owner, name="CI", scopes=[ApiScope.CONFIG])[1]


@pytest.fixture
def call(client):
    def request(method: str, path: str, key: str, body=None, **headers):
        response = client.generic(method, path if path.startswith("http") else f"/api/v1/{path}",
                                  data=json.dumps(body) if body is not None else "",
                                  content_type="application/json", headers={"X-API-Key": key, **headers})
        return response.status_code, response.json(), response

    return request


def webhooks(organization, count: int, **changes) -> dict:
    return {"format": "crm-webhooks", "version": 1, "webhooks": [
        {"organization": organization.name, "module": "Deals", "name": f"Hook {i}",
         "url": f"https://receiver{i}.example.com/hook", "auth": {"type": "basic", "username": "crm",
                                                                  "password": f"sekrit-{i}"},
         "entity_parameters": [{"name": "deal", "value": "${Deals.Deal Name}"}], **changes}
        for i in range(count)]}


def test_a_small_file_is_still_imported_within_the_request(call, key, organization):
    status, answer, _ = call("POST", "config/", key, webhooks(organization, 3))
    assert status == 200 and answer["data"]["webhooks"]["created"] == ["Hook 0", "Hook 1", "Hook 2"]
    assert not ConfigImportJob.objects.exists()


def test_a_large_file_is_a_job_that_a_worker_imports(call, key, organization, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        status, answer, _ = call("POST", "config/", key, webhooks(organization, 4))
    job = answer["data"]
    assert status == 202 and job["status"] == "pending" and job["entries"] == 4
    assert job["url"].endswith(f"/api/v1/config/imports/{job['id']}/")
    assert job["counts"] is None and job["report"] is None and job["problems"] == []
    assert not Webhook.objects.exists()  # nothing imported while the client waited
    stored = ConfigImportJob.objects.get()
    assert "sekrit-0" not in stored.file and stored.file  # kept encrypted until the worker has it

    status, answer, _ = call("GET", job["url"], key)
    assert (status, answer["data"]["status"]) == (200, "pending")

    for callback in queued:  # the transaction committed: the task is sent (and runs here, eagerly)
        callback()
    status, answer, _ = call("GET", job["url"], key)
    done = answer["data"]
    assert status == 200 and done["status"] == "done" and done["problems"] == []
    assert done["counts"]["webhooks"] == {"created": 4, "updated": 0, "unchanged": 0}
    assert done["report"]["summary"] == ["Created 4 webhook(s): Hook 0, Hook 1, Hook 2, Hook 3"]
    assert done["started_at"] and done["finished_at"]
    assert Webhook.objects.get(name="Hook 3").auth_password == "sekrit-3"
    assert ConfigImportJob.objects.get().file == ""  # the secrets it held are not kept


def test_a_large_file_with_problems_fails_as_a_whole_and_says_why(call, key, organization,
                                                                  django_capture_on_commit_callbacks):
    bad = webhooks(organization, 5)
    bad["webhooks"][1]["url"] = "ftp://receiver.example.com/"
    bad["webhooks"][4]["capture"] = {"captures": 1}
    with django_capture_on_commit_callbacks(execute=True):
        status, answer, _ = call("POST", "config/?dry_run=true", key, bad)
    assert status == 202 and answer["data"]["dry_run"] is True
    status, answer, _ = call("GET", answer["data"]["url"], key)
    failed = answer["data"]
    assert failed["status"] == "failed" and failed["counts"] is None and failed["report"] is None
    assert failed["problems"] == [
        "webhooks[4] “Hook 4”: capture.captures: must be a list (got 1).",
        "webhooks[1] “Hook 1”: url: The URL must start with http:// or https://.",
    ]
    assert not Webhook.objects.exists()


def test_a_file_that_is_no_configuration_is_refused_at_once_not_queued(call, key, organization):
    status, problem, response = call("POST", "config/", key, {"format": "other", "webhooks": [{}] * 10})
    assert (status, problem["code"]) == (422, "invalid_config")
    assert response["Content-Type"] == "application/problem+json"
    assert not ConfigImportJob.objects.exists()


def test_another_organizations_job_is_not_found(call, key, organization, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _, answer, _ = call("POST", "config/", key, webhooks(organization, 4))
    other = OrganizationFactory(name="Acme Corp")
    stranger = CrmUserFactory(organization=other, email="eve@acme.example")
    their_key = crm_services.api_key_create(user=stranger, name="CI", scopes=[ApiScope.CONFIG])[1]
    for path in (answer["data"]["url"], "config/imports/not-a-job/",
                 "config/imports/00000000-0000-0000-0000-000000000000/"):
        status, problem, _ = call("GET", path, their_key)
        assert (status, problem["code"]) == (404, "not_found")


def test_a_replayed_post_gets_the_same_job_and_queues_nothing_new(call, key, organization,
                                                                  django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = call("POST", "config/", key, webhooks(organization, 4), **{"Idempotency-Key": "deploy-7"})
        again = call("POST", "config/", key, webhooks(organization, 4), **{"Idempotency-Key": "deploy-7"})
    assert first[0] == again[0] == 202 and first[1]["data"]["id"] == again[1]["data"]["id"]
    assert again[2]["Idempotent-Replayed"] == "true" and ConfigImportJob.objects.count() == 1


def test_a_job_whose_worker_died_is_shown_failed_and_taken_over_by_a_redelivery(call, key, organization,
                                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        _, answer, _ = call("POST", "config/", key, webhooks(organization, 4))
    long_ago = timezone.now() - datetime.timedelta(seconds=JOB_TIME_LIMIT_SECONDS + 1)
    ConfigImportJob.objects.update(status=ImportStatus.RUNNING, started_at=long_ago)  # its worker was killed
    _, shown, _ = call("GET", answer["data"]["url"], key)
    assert shown["data"]["status"] == "failed" and "stopped before it ended" in shown["data"]["problems"][0]
    config_import_job_run(job_id=ConfigImportJob.objects.get().pk)  # the message, delivered again
    _, shown, _ = call("GET", answer["data"]["url"], key)
    assert shown["data"]["status"] == "done" and Webhook.objects.count() == 4
    config_import_job_run(job_id=ConfigImportJob.objects.get().pk)  # once more: a job is imported once
    assert ConfigImportJob.objects.get().status == ImportStatus.DONE
