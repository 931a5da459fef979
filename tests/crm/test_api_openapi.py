"""What the OpenAPI document tells a client, checked against what the API does: the scope each operation
needs (the key without it gets exactly that 403, and the REST API page's table says the same), the Idempotency-Key
header on every POST, and a key that is empty, blank or too long refused before anything is done."""
import json
import re

import pytest

from crm import services
from crm.models import ApiScope, IdempotentRequest, Record
from tests.docs.pages import page

PATH_VALUES = {"module": "Deals", "pk": "1", "channel_id": "ch_1", "delivery_id": "msg_1", "job_id": "job_1",
               "event_type": "Deals.create"}


@pytest.fixture
def document(client) -> dict:
    return client.get("/api/v1/openapi.json").json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_each_operation_names_the_one_scope_its_key_needs(document):
    for method, path, operation in operations(document):
        [scope] = operation["x-scopes"]
        assert scope in ApiScope.values, (method, path)
        assert operation["security"] == [{"ApiKeyHeader": [scope]}, {"ApiKeyQuery": [scope]}], (method, path)
        assert f"**Scope:** `{scope}`" in operation["description"], (method, path)
    schemes = document["components"]["securitySchemes"]
    assert {name: (scheme["in"], scheme["name"]) for name, scheme in schemes.items()} == {
        "ApiKeyHeader": ("header", "X-API-Key"), "ApiKeyQuery": ("query", "zapikey")}
    assert all(f"`{scope}`" in scheme["description"] for scheme in schemes.values() for scope in ApiScope.values)


def test_the_rest_api_page_gives_each_operation_the_scope_of_the_document(document):
    documented = {(method, path): scope for method, path, scope in re.findall(
        r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \| ([a-z:]+) \|", page("integrate/rest-api.md"), re.MULTILINE)}
    served = {(method, path.removeprefix("/api/v1")): operation["x-scopes"][0]
              for method, path, operation in operations(document)}
    assert {operation: scope for operation, scope in documented.items() if operation in served} == {
        operation: scope for operation, scope in served.items() if operation in documented}


def test_a_key_without_the_documented_scope_gets_403_naming_it(client, owner, document):
    keys = {scope: services.api_key_create(user=owner, name=f"All but {scope}",
                                           scopes=[s for s in ApiScope.values if s != scope])[1]
            for scope in ApiScope.values}
    for method, path, operation in operations(document):
        [scope] = operation["x-scopes"]
        url = re.sub(r"\{(\w+)\}", lambda match: PATH_VALUES[match.group(1)], path)
        response = client.generic(method, url, data="{}", content_type="application/json",
                                  headers={"X-API-Key": keys[scope]})
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["required_scope"] == scope, (method, path)


def test_every_post_and_only_posts_declare_the_idempotency_key_header(document):
    posts = 0
    for method, path, operation in operations(document):
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header" and p["name"] == "Idempotency-Key"]
        if method != "POST":
            assert headers == [], (method, path)
            continue
        posts += 1
        [header] = headers
        assert header["required"] is False and header["schema"]["maxLength"] == 255, path
        assert re.fullmatch(header["schema"]["pattern"], "0f3c2a9e-8d7b-4c1a-9e8d-7b4c1a9e8d7b"), path
        assert not re.fullmatch(header["schema"]["pattern"], "   "), path
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                assert "Idempotent-Replayed" in response["headers"], (path, status)
    assert posts >= 8


@pytest.mark.parametrize(("sent", "said"), [
    ("", "Idempotency-Key is empty"),
    ("   ", "Idempotency-Key is empty"),
    ("k" * 256, "Idempotency-Key has 256 characters"),
    ("clé", "not printable ASCII"),
])
def test_an_empty_blank_long_or_non_ascii_idempotency_key_is_refused_and_nothing_is_made(client, owner, sent, said):
    key = services.api_key_create(user=owner, name="Shop")[1]
    response = client.post("/api/v1/records/Deals/", data=json.dumps({"Deal_Name": "Twice?"}),
                           content_type="application/json", headers={"X-API-Key": key, "Idempotency-Key": sent})
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_idempotency_key" and said in problem["detail"], problem
    assert "UUID" in problem["detail"] and problem["max_length"] == 255
    assert not Record.objects.filter(values__Deal_Name="Twice?").exists()
    assert not IdempotentRequest.objects.exists()


def test_a_key_of_255_characters_is_kept_and_answers_a_retry_again(client, owner):
    key = services.api_key_create(user=owner, name="Shop")[1]
    headers = {"X-API-Key": key, "Idempotency-Key": "k" * 255}
    answers = [client.post("/api/v1/records/Deals/", data=json.dumps({"Deal_Name": "Once"}),
                           content_type="application/json", headers=headers) for _ in range(2)]
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[1]["Idempotent-Replayed"] == "true" and answers[0].json() == answers[1].json()
    assert Record.objects.filter(values__Deal_Name="Once").count() == 1
