"""The published contract: OpenAPI 3.1 at /api/v1/openapi.json, a docs page that needs no CDN, and
schemathesis against the served document — every answer of every operation conforms to it, and none is a
500. Bounded examples per operation, so the run is the same size on any machine."""
import collections
import re

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from crm import services
from crm.models import ApiScope
from dispatcher import delivery as delivery_engine
from tests.docs.pages import page
from tests.factories import webhook_create


def test_the_openapi_document_is_3_1_and_lists_every_operation(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert {("GET", "/api/v1/records/{module}/"), ("POST", "/api/v1/records/{module}/"),
            ("GET", "/api/v1/deliveries/"), ("GET", "/api/v1/deliveries/{delivery_id}/"),
            ("POST", "/api/v1/deliveries/{delivery_id}/resend/"), ("POST", "/api/v1/deliveries/recover/"),
            ("GET", "/api/v1/usage/"), ("GET", "/api/v1/webhooks/"), ("GET", "/api/v1/workflow-rules/"),
            ("GET", "/api/v1/config/"), ("POST", "/api/v1/config/"), ("GET", "/api/v1/channels/")} <= operations
    problem = document["paths"]["/api/v1/records/{module}/"]["post"]["responses"]["422"]["content"]
    assert list(problem) == ["application/problem+json"]


def test_the_docs_page_is_served_from_the_package_without_a_cdn(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/api/v1/openapi.json" in html
    scripts = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert scripts and all(not url.startswith(("http://", "https://", "//")) for url in scripts), scripts
    # Each asset ships with an installed package (collected by collectstatic, served by whitenoise).
    for url in scripts:
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), url


def test_the_rest_api_page_documents_exactly_the_operations_of_the_schema(client):
    """The operation table of docs/integrate/rest-api.md is checked against the served document, both ways."""
    document = client.get("/api/v1/openapi.json").json()
    served = {(method.upper(), path.removeprefix("/api/v1")) for path, item in document["paths"].items()
              for method in item}
    rest_api, channels = page("integrate/rest-api.md"), page("integrate/channels.md")
    documented = set(re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \|", rest_api, re.MULTILINE))
    assert documented == served, (sorted(served - documented), sorted(documented - served))
    curls = re.findall(r"^curl .*$", rest_api + "\n" + channels, re.MULTILINE)
    for method, path in documented:  # and a curl example for each, on the REST API or the channels page
        url = r"[^\s/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", path))
        assert any(re.search(rf"(\$API|/api/v1){url}(?=[\s\"?\\]|$)", line)
                   and (f"-X {method} " in line) == (method != "GET") for line in curls), (method, path)


@pytest.fixture
def contract_key(owner, modules, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 10 ** 6
    hook = webhook_create(module=modules["Deals"], name="Books", entity=[("deal", "${Deals.Deal Name}")])
    deal = services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Contract"})
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    return services.api_key_create(user=owner, name="Contract", scopes=list(ApiScope.values))[1]


@pytest.fixture
def wsgi_app(db):
    """The application in this process, its database the test's (as Django's test client arranges it:
    connections are not closed at the end of each request)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 12


def test_every_answer_conforms_to_the_published_schema(wsgi_app, contract_key):
    """schemathesis generates requests for every operation from the document the API serves; each answer
    must be documented (status, content type, body) and none may be a 500."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi_app)
    failures, tried, statuses = [], [], collections.Counter()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case):
            response = case.call_and_validate(headers={"X-API-Key": contract_key}, checks=CHECKS)
            statuses[response.status_code // 100] += 1

        tried.append(f"{operation.method.upper()} {operation.path}")
        try:
            conforms()
        except Exception as error:  # noqa: BLE001 - every operation is tried; all failures are reported
            failures.append(f"{tried[-1]}: {error}")
    assert len(tried) >= 25, tried
    assert statuses[2] >= len(tried) and statuses[4], statuses  # real answers, successes and refusals both
    assert not failures, "\n\n".join(failures)
