"""The webhook admin as an admin uses it: forms, messages, masking, preview and test send."""
import lxml.html
import pytest
from django.db import connection
from django.urls import reverse

from crm import services as crm_services
from dispatcher.models import DailyUsage, Delivery, Webhook
from tests.factories import staff_login, webhook_create

ADD_URL = reverse("admin:dispatcher_webhook_add")


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Website <redesign>", "Amount": "100"})


def form_data(organization, module, *, entity=(), custom=(), headers=(), initial=(0, 0), **overrides) -> dict:
    data = {
        "organization": organization.pk, "module": module.pk, "name": "Books", "description": "",
        "url": "https://books.example.com/hook", "method": "POST", "content_type": "JSON", "body": "",
        "auth_type": "none", "auth_username": "", "auth_password": "", "date_format": "", "datetime_format": "",
        "time_zone": "", "is_active": "on", "capture_type": "JSONPATH", "capture_namespaces": "",
    }
    for prefix, rows, initial_count in (("entity_parameters", entity, initial[0]),
                                        ("custom_parameters", custom, initial[1]), ("captures", (), 0),
                                        ("headers", headers, initial[2] if len(initial) > 2 else 0)):
        data.update({f"{prefix}-TOTAL_FORMS": len(rows), f"{prefix}-INITIAL_FORMS": initial_count,
                     f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000})
        for index, row in enumerate(rows):
            for key, value in row.items():
                data[f"{prefix}-{index}-{key}"] = value
    data.update(overrides)
    return data


def test_an_admin_creates_a_webhook_with_parameters_and_secrets_are_encrypted(admin_client, organization, modules):
    data = form_data(organization, modules["Deals"], auth_type="basic", auth_username="crm", auth_password="hunter2!",
                     entity=[{"name": "deal", "value": "${Deals.Deal Name}", "position": 0}],
                     custom=[{"name": "authtoken", "value": "tok-abcdef", "position": 0}])
    response = admin_client.post(ADD_URL, data, follow=True)
    assert response.status_code == 200
    assert b"was added successfully" in response.content
    webhook = Webhook.objects.get(name="Books")
    assert webhook.auth_password == "hunter2!"
    assert webhook.custom_parameters.get().value == "tok-abcdef"
    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_password, signing_secret FROM dispatcher_webhook WHERE id = %s", [webhook.pk])
        stored = " ".join(cursor.fetchone())
        cursor.execute("SELECT value FROM dispatcher_customparameter")
        stored += cursor.fetchone()[0]
    assert "hunter2" not in stored and "tok-abcdef" not in stored and webhook.signing_secret not in stored


def test_an_admin_sets_a_bearer_token_and_headers_and_secrets_stay_encrypted_and_masked(admin_client, organization,
                                                                                       modules):
    page = admin_client.get(ADD_URL).content.decode()
    assert "OAuth 2.0 client credentials" in page and "Mutual TLS" in page and "Custom headers" in page
    data = form_data(organization, modules["Deals"], auth_type="bearer", auth_token="tok-bearer-9",
                     headers=[{"name": "X-Api-Key", "value": "key-sekrit-9", "is_secret": "on", "position": 0},
                              {"name": "X-Deal", "value": "${Deals.Deal Name}", "position": 1}])
    response = admin_client.post(ADD_URL, data, follow=True)
    assert b"was added successfully" in response.content, response.content.decode()[-2000:]
    webhook = Webhook.objects.get(name="Books")
    assert webhook.auth_token == "tok-bearer-9"
    assert [(h.name, h.value, h.is_secret) for h in webhook.headers.all()] == [
        ("X-Api-Key", "key-sekrit-9", True), ("X-Deal", "${Deals.Deal Name}", False)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_token FROM dispatcher_webhook WHERE id = %s", [webhook.pk])
        stored = cursor.fetchone()[0]
        cursor.execute("SELECT value FROM dispatcher_webhookheader")
        stored += " ".join(row[0] for row in cursor.fetchall())
    assert "tok-bearer-9" not in stored and "key-sekrit-9" not in stored
    page = admin_client.get(reverse("admin:dispatcher_webhook_change", args=[webhook.pk])).content.decode()
    assert "tok-bearer-9" not in page and "key-sekrit-9" not in page and "${Deals.Deal Name}" in page
    data = form_data(organization, modules["Deals"], auth_type="none", headers=[
        {"name": "Host", "value": "evil.example", "position": 0}])
    response = admin_client.post(reverse("admin:dispatcher_webhook_change", args=[webhook.pk]), data)
    assert "The header Host is set by the connection" in response.content.decode()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"url": "ftp://books.example.com"}, "The URL must start with http:// or https://."),
    ({"auth_type": "bearer"}, "Enter the bearer token."),
    ({"auth_type": "oauth2", "oauth_client_id": "crm"}, "Enter the token URL for OAuth 2.0 client credentials."),
    ({"auth_type": "oauth2", "oauth_token_url": "http://10.0.0.5/token", "oauth_client_id": "c",
      "oauth_client_secret": "s"}, "webhooks can only reach public addresses"),
    ({"tls_client_certificate": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"},
     "Give both the client certificate and its key, or neither."),
    ({"tls_ca_bundle": "not pem"}, "The CA bundle is not valid PEM"),
    ({"url": "https://books.example.com:8080/"}, "Port 8080 is not allowed; webhooks may only use ports 80, 443."),
    ({"name": "Books!"}, "Use letters, digits, spaces, hyphens and underscores only in the name."),
    ({"method": "GET", "body": "{}"}, "A GET request has no body: choose POST or PUT, or leave the body empty."),
    ({"auth_type": "basic", "auth_username": "crm"}, "Enter the password for Basic authentication."),
    ({"body": '{"a": ${Deals.Amount'}, "The body is not valid JSON"),
    # The browser no longer cuts pasted text at maxlength: the server says what the limit is.
    ({"url": "https://books.example.com/" + "a" * 184}, "Ensure this value has at most 200 characters (it has 210)."),
    ({"name": "B" * 101}, "Ensure this value has at most 100 characters (it has 101)."),
    ({"description": "d" * 201}, "Ensure this value has at most 200 characters (it has 201)."),
])
def test_the_form_shows_what_is_wrong_and_saves_nothing(admin_client, organization, modules, overrides, message):
    response = admin_client.post(ADD_URL, form_data(organization, modules["Deals"], **overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Webhook.objects.exists()


def test_no_admin_form_lets_the_browser_cut_text_silently(admin_client, organization, modules):
    webhook = webhook_create(module=modules["Deals"], name="Books")
    for name, args in [("dispatcher_webhook_add", []), ("dispatcher_webhook_change", [webhook.pk]),
                       ("workflows_workflowrule_add", []), ("crm_organization_change", [organization.pk]),
                       ("dispatcher_retrypolicy_add", []), ("crm_field_add", [])]:
        page = admin_client.get(reverse(f"admin:{name}", args=args)).content.decode()
        assert 'name="name"' in page or 'name="label"' in page, name
        assert "maxlength" not in page, name


def test_notes_are_not_offered_as_a_module(admin_client, organization, modules):
    response = admin_client.get(ADD_URL)
    options = response.context["adminform"].form.fields["module"].queryset
    assert modules["Deals"] in options and modules["Notes"] not in options and modules["Calls"] not in options


def test_rules_across_entity_and_custom_parameters_are_checked(admin_client, organization, modules):
    data = form_data(organization, modules["Deals"],
                     entity=[{"name": "token", "value": "${Deals.Amount}", "position": 0}],
                     custom=[{"name": "token", "value": "abc", "position": 0}])
    response = admin_client.post(ADD_URL, data)
    assert "The parameter name “token” is used more than once." in response.content.decode()
    assert not Webhook.objects.exists()


def test_saved_secrets_are_never_shown_and_kept_when_left_empty(admin_client, organization, modules):
    webhook = webhook_create(module=modules["Deals"], name="Books", auth_type="basic", auth_username="crm",
                             auth_password="hunter2!", custom=[("authtoken", "tok-abcdef")])
    url = reverse("admin:dispatcher_webhook_change", args=[webhook.pk])
    page = admin_client.get(url).content.decode()
    assert "hunter2" not in page and "tok-abcdef" not in page
    parameter = webhook.custom_parameters.get()
    data = form_data(organization, modules["Deals"], auth_type="basic", auth_username="crm", description="changed",
                     url=webhook.url, custom=[{"id": parameter.pk, "webhook": webhook.pk, "name": "authtoken", "value": "", "position": 0}],
                     initial=(0, 1))
    response = admin_client.post(url, data, follow=True)
    assert b"was changed successfully" in response.content
    webhook.refresh_from_db()
    assert (webhook.description, webhook.auth_password) == ("changed", "hunter2!")
    assert webhook.custom_parameters.get(name="authtoken").value == "tok-abcdef"


def test_switching_authorization_off_forgets_the_password(admin_client, organization, modules):
    webhook = webhook_create(module=modules["Deals"], name="Books", auth_type="basic", auth_username="crm",
                             auth_password="hunter2!")
    url = reverse("admin:dispatcher_webhook_change", args=[webhook.pk])
    admin_client.post(url, form_data(organization, modules["Deals"], auth_type="none"))
    webhook.refresh_from_db()
    assert (webhook.auth_type, webhook.auth_username, webhook.auth_password) == ("none", "", "")


def test_saving_warns_about_unsupported_merge_fields(admin_client, organization, modules):
    data = form_data(organization, modules["Deals"],
                     entity=[{"name": "lead", "value": "${Leads.Lead Id}", "position": 0}])
    response = admin_client.post(ADD_URL, data, follow=True)
    assert ("${Leads.Lead Id} will be sent as ${Unsupported_Field}: Leads fields are not available for Deals "
            "webhooks.") in response.content.decode()
    assert Webhook.objects.filter(name="Books").exists()  # a warning, not an error: the admin's work is kept


def test_the_change_page_lists_the_available_merge_fields(admin_client, modules):
    webhook = webhook_create(module=modules["Deals"], name="Books")
    page = admin_client.get(reverse("admin:dispatcher_webhook_change", args=[webhook.pk])).content.decode()
    for token in ("${Deals.Deal Name}", "${Accounts.Account Name}", "${Contacts.Email}", "${User.Mobile}",
                  "${Organization.Name}", "${Events.Event Title}"):
        assert token in page
    assert "Preview and test" in page


def test_the_preview_shows_the_masked_request_for_the_chosen_record(admin_client, modules, deal, owner):
    other = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Other"})
    webhook = webhook_create(module=modules["Deals"], name="Books", auth_type="basic", auth_username="crm",
                             auth_password="hunter2!", entity=[("deal", "${Deals.Deal Name}")],
                             custom=[("authtoken", "tok-abcdef")])
    url = reverse("admin:dispatcher_webhook_preview", args=[webhook.pk])
    page = admin_client.get(url, {"record": deal.pk}).content.decode()
    assert "POST https://receiver.example.com/hook" in page
    assert "{&quot;deal&quot;: &quot;Website &lt;redesign&gt;&quot;, &quot;authtoken&quot;: &quot;********&quot;}" in page
    assert "Authorization: Basic ********" in page and "webhook-signature: v1," in page
    assert "hunter2" not in page and "tok-abcdef" not in page
    assert "Other" in admin_client.get(url, {"record": other.pk}).content.decode()
    assert "There is no record with id 999999." in admin_client.get(url, {"record": 999999}).content.decode()


def test_send_test_goes_to_the_receiver_and_shows_its_answer(admin_client, modules, deal, receiver):
    receiver.expect_oneshot_request("/hook", method="POST", json={"deal": "Website <redesign>", "authtoken": "tok-1"}) \
        .respond_with_data('{"status": "created", "id": 42}', status=201, content_type="application/json")
    webhook = webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                             entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", "tok-1")])
    url = reverse("admin:dispatcher_webhook_preview", args=[webhook.pk])
    page = admin_client.post(url, {"record": deal.pk}).content.decode()
    receiver.check_assertions()
    assert "HTTP 201 in" in page
    assert "{&quot;status&quot;: &quot;created&quot;, &quot;id&quot;: 42}" in page
    # In the log as a delivery of source "Test", with its attempt, masked; not charged to the daily quota.
    logged = Delivery.objects.get()
    assert (logged.source, logged.status, logged.trigger, logged.attempt_count) == ("test", "success",
                                                                                    "Test send by boss", 1)
    [(request, _)] = receiver.log
    assert request.headers["webhook-id"] == logged.message_id
    assert "tok-1" not in logged.request_display and logged.attempts.get().status_code == 201
    assert reverse("admin:dispatcher_delivery_change", args=[logged.pk]) in page
    assert not DailyUsage.objects.filter(calls__gt=0).exists()
    log_page = admin_client.get(reverse("admin:dispatcher_delivery_changelist"), {"source__exact": "test"})
    assert log_page.context["cl"].result_count == 1


def test_send_test_shows_a_refused_address(admin_client, modules, deal, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    webhook = webhook_create(module=modules["Deals"], name="Books", url="http://127.0.0.1/hook")
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    page = admin_client.post(reverse("admin:dispatcher_webhook_preview", args=[webhook.pk]), {"record": deal.pk})
    assert "blocked_address: The address 127.0.0.1 is not a public address." in page.content.decode()


def test_staff_with_view_permission_only_cannot_send(client, organization, modules, deal):
    client.force_login(staff_login(organization, "auditor", permissions=("view_webhook",)))
    webhook = webhook_create(module=modules["Deals"], name="Books")
    url = reverse("admin:dispatcher_webhook_preview", args=[webhook.pk])
    page = client.get(url, {"record": deal.pk}).content.decode()
    assert "Send test request" not in page and "POST https://receiver.example.com/hook" in page
    assert "webhook-signature: v1,********" in page  # a fresh signature could be replayed; view-only users get none
    assert client.post(url, {"record": deal.pk}).status_code == 403


def test_list_search_filters_and_actions(admin_client, modules):
    first = webhook_create(module=modules["Deals"], name="Books")
    webhook_create(module=modules["Leads"], name="Mailing", url="https://mail.example.com/x")
    changelist = reverse("admin:dispatcher_webhook_changelist")
    assert admin_client.get(changelist, {"q": "mail.example"}).context["cl"].result_count == 1
    assert admin_client.get(changelist, {"module__api_name": "Deals"}).context["cl"].result_count == 1
    secret = first.signing_secret
    admin_client.post(changelist, {"action": "deactivate", "_selected_action": [first.pk]})
    admin_client.post(changelist, {"action": "rotate_signing_secret", "_selected_action": [first.pk]})
    first.refresh_from_db()
    assert not first.is_active and first.signing_secret != secret
    response = admin_client.post(changelist, {"action": "send_test", "_selected_action": [first.pk]})
    assert response.url == reverse("admin:dispatcher_webhook_preview", args=[first.pk])


def test_the_delivery_log_shows_attempts_with_their_meaning_and_no_secret(admin_client, modules, deal, receiver):
    from dispatcher import delivery as delivery_engine
    from dispatcher.models import Delivery

    receiver.expect_request("/hook").respond_with_data("nope", status=404)
    webhook = webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                             entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", "tok-abcdef")])
    delivery = delivery_engine.delivery_enqueue(webhook=webhook, record=deal)
    delivery_engine.delivery_run(delivery_id=delivery.pk)
    listing = admin_client.get(reverse("admin:dispatcher_delivery_changelist"), {"status__exact": "failed"})
    assert listing.context["cl"].result_count == 1
    page = admin_client.get(reverse("admin:dispatcher_delivery_change", args=[delivery.pk])).content.decode()
    assert delivery.message_id in page
    assert "404 Not found: the requested item does not exist." in page
    assert "&quot;authtoken&quot;: &quot;********&quot;" in page and "tok-abcdef" not in page
    assert admin_client.get(reverse("admin:dispatcher_delivery_add")).status_code == 403
    assert Delivery.objects.get().status == "failed"


def shown_inputs(response) -> dict[str, lxml.html.HtmlElement]:
    """The webhook form's text inputs and text areas by name, as the browser got them."""
    doc = lxml.html.fromstring(response.content.decode())
    return {element.get("name"): element for element in doc.xpath(
        "//form[@id='webhook_form']//input[not(@type='hidden')] | //form[@id='webhook_form']//textarea")}


def typed(element: lxml.html.HtmlElement) -> str:
    return (element.text or "") if element.tag == "textarea" else (element.get("value") or "")


def test_the_add_form_masks_nothing_since_nothing_is_stored(admin_client):
    assert "********" not in admin_client.get(ADD_URL).content.decode()


@pytest.mark.parametrize("auth_type, secret", [("basic", "auth_password"), ("bearer", "auth_token"),
                                               ("oauth2", "oauth_client_secret")])
def test_an_error_keeps_every_secret_typed_in_this_request(admin_client, organization, modules, auth_type, secret):
    data = form_data(
        organization, modules["Deals"], name="B" * 101, auth_type=auth_type, auth_username="crm",
        oauth_token_url="https://auth.example.com/token", oauth_client_id="crm", **{secret: "typed-secret-1"},
        tls_client_certificate="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        tls_client_key="-----BEGIN PRIVATE KEY-----\ntyped-key-2\n-----END PRIVATE KEY-----",
        custom=[{"name": "authtoken", "value": "typed-token-3", "position": 0}],
        headers=[{"name": "X-Api-Key", "value": "typed-header-4", "is_secret": "on", "position": 0}])
    response = admin_client.post(ADD_URL, data)
    assert "Ensure this value has at most 100 characters (it has 101)." in response.content.decode()
    inputs = shown_inputs(response)
    assert typed(inputs[secret]) == "typed-secret-1"
    assert "typed-key-2" in typed(inputs["tls_client_key"])
    assert typed(inputs["custom_parameters-0-value"]) == "typed-token-3"
    assert typed(inputs["headers-0-value"]) == "typed-header-4"
    assert "********" not in response.content.decode()  # an unsaved webhook has no stored secret to mask
    assert "no-store" in response["Cache-Control"]  # what was typed is not kept by the browser's cache
    assert not Webhook.objects.exists()


def test_an_error_on_a_saved_webhook_gives_back_what_was_typed_never_what_is_stored(admin_client, organization,
                                                                                     modules):
    webhook = webhook_create(module=modules["Deals"], name="Books", auth_type="basic", auth_username="crm",
                             auth_password="hunter2!", custom=[("authtoken", "tok-abcdef"), ("region", "tok-region")],
                             headers=[("X-Api-Key", "key-abcdef", True)])
    authtoken, region = webhook.custom_parameters.order_by("position")
    header = webhook.headers.get()
    url = reverse("admin:dispatcher_webhook_change", args=[webhook.pk])
    response = admin_client.post(url, form_data(
        organization, modules["Deals"], name="B" * 101, url=webhook.url, auth_type="basic", auth_username="crm",
        auth_password="pw-typed",
        custom=[{"id": authtoken.pk, "webhook": webhook.pk, "name": "authtoken", "value": "tok-typed", "position": 0},
                {"id": region.pk, "webhook": webhook.pk, "name": "region", "value": "", "position": 1}],
        headers=[{"id": header.pk, "webhook": webhook.pk, "name": "X-Api-Key", "value": "key-typed",
                  "is_secret": "on", "position": 0}],
        initial=(0, 2, 1)))
    page = response.content.decode()
    assert "Ensure this value has at most 100 characters (it has 101)." in page
    inputs = shown_inputs(response)
    assert [typed(inputs[name]) for name in ("auth_password", "custom_parameters-0-value",
                                             "custom_parameters-1-value", "headers-0-value")] == [
        "pw-typed", "tok-typed", "", "key-typed"]
    assert inputs["custom_parameters-1-value"].get("placeholder") == "********"  # left empty: the stored one stays
    for stored in ("hunter2!", "tok-abcdef", "tok-region", "key-abcdef"):
        assert stored not in page
    webhook.refresh_from_db()
    assert (webhook.name, webhook.auth_password, header.value) == ("Books", "hunter2!", "key-abcdef")
