"""Organizations in the admin: staff of one organization against another's objects, page by page (issue 16).

Every registered admin is walked: the other organization's objects are not listed, not found (404, like a
missing id), not offered as choices or autocomplete results, not touched by actions, and never change.
"""
import datetime
import html
import re

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from config.admin_base import ORGANIZATION_PATHS
from crm import services as crm_services
from crm.models import ApiKey, CrmUser, Field, Module, Organization, Record
from dispatcher.senders import channels
from dispatcher import delivery as delivery_engine
from dispatcher.models import (
    Attempt, Capture, Channel, CustomParameter, DailyUsage, Delivery, Endpoint, EntityParameter, RetryPolicy, Webhook,
)
from tests.factories import CrmUserFactory, OrganizationFactory, staff_login, webhook_create
from workflows.models import Action, ActionRun, Condition, WorkflowRule
from workflows.services import rule_save

def world(receiver, name: str) -> dict:
    """One organization with one of everything the admin shows."""
    organization = OrganizationFactory(name=name)
    owner = CrmUserFactory(organization=organization, first_name=name, last_name="Owner", is_admin=True)
    deals = organization.modules.get(api_name="Deals")
    Module.objects.create(organization=organization, api_name=f"Projects_{name}", singular_label=f"Project {name}",
                          is_custom=True)
    receiver.expect_request(f"/{name}").respond_with_data("nope", status=500)
    webhook = webhook_create(module=deals, name=f"Hook {name}", url=receiver.url_for(f"/{name}"),
                             auth_type="basic", auth_username="crm", auth_password=f"hunter2-{name}!",
                             entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", f"tok-of-{name}")])
    field = Field.objects.create(module=deals, label=f"Ref {name}", api_name=f"Ref_{name}")
    Capture.objects.create(webhook=webhook, when="failure", expression="$.x", field=field)
    rule = rule_save(rule=WorkflowRule(organization=organization, module=deals, name=f"Rule {name}",
                                       trigger="edit", match_all_records=True),
                     conditions=[Condition(number=1, field=field, operator="not_empty")],
                     actions=[Action(webhook=webhook, kind="time_based", delay_amount=2, delay_unit="days")]).rule
    record = crm_services.record_create(module=deals, owner=owner, values={"Deal_Name": f"Deal {name}"})
    crm_services.record_update(record=record, values={f"Ref_{name}": "x"})  # fires the rule: a scheduled run
    delivery = delivery_engine.delivery_enqueue(webhook=webhook, record=record, trigger=f"Rule “Rule {name}” on edit")
    delivery_engine.delivery_run(delivery_id=delivery.pk)
    channel = channels.channel_create(organization=organization, owner=owner, events=["Deals.create"],
                                      notify_url=receiver.url_for(f"/{name}/notify"), token=f"chan-{name}")
    key, _ = crm_services.api_key_create(user=owner, name=f"Key {name}")
    return {
        "organization": organization, "owner": owner, "module": deals, "field": field, "webhook": webhook,
        "rule": rule, "record": record, "delivery": Delivery.objects.get(pk=delivery.pk), "channel": channel,
        "key": key, "endpoint": Endpoint.objects.get(organization=organization),
    }


@pytest.fixture
def two(receiver, db):
    a, b = world(receiver, "alpha"), world(receiver, "bravo")
    assert Endpoint.objects.filter(organization=b["organization"]).exists()
    return a, b


def options(page: str, name: str) -> list[str]:
    """The values a select box of a page offers."""
    select = re.search(rf'<select name="{name}".*?</select>', page, re.DOTALL)
    assert select, name
    return re.findall(r'<option value="([^"]*)"', select.group(0))


def objects_of(organization: Organization) -> dict[str, list[int]]:
    """Every admin-registered row of an organization, by model, with what could change."""
    found = {}
    for model in admin.site._registry:
        path = ORGANIZATION_PATHS.get(model._meta.label_lower)
        if path:
            found[model._meta.label_lower] = list(model.objects.filter(**{path: organization.pk})
                                                  .order_by("pk").values_list("pk", flat=True))
    return found


def fingerprint(organization: Organization) -> list:
    """What another organization's staff must never change."""
    return [
        list(Webhook.objects.filter(organization=organization).values_list(
            "name", "url", "is_active", "signing_secret", "modified_at")),
        list(Delivery.objects.filter(organization=organization).values_list("status", "resent_by", "attempt_count")),
        list(WorkflowRule.objects.filter(organization=organization).values_list("name", "is_active", "modified_at")),
        list(ActionRun.objects.filter(rule__organization=organization).values_list("status", "reason")),
        list(Channel.objects.filter(organization=organization).values_list("is_active", "notify_url")),
        list(Endpoint.objects.filter(organization=organization).values_list("rate_limit", "disabled_at")),
        list(Record.objects.filter(module__organization=organization).values_list("values", "modified_at")),
        list(ApiKey.objects.filter(organization=organization).values_list("name", "revoked_at")),
        list(CustomParameter.objects.filter(webhook__organization=organization).values_list("value")),
        list(EntityParameter.objects.filter(webhook__organization=organization).values_list("value")),
        list(CrmUser.objects.filter(organization=organization).values_list("email", "is_admin", "is_active")),
        list(Module.objects.filter(organization=organization).values_list("api_name", "aliases")),
    ]


@pytest.mark.parametrize("group", ["Integration admin", "Auditor"])
def test_staff_of_one_organization_cannot_see_or_reach_anothers_objects(client, two, group):
    a, b = two
    client.force_login(staff_login(a["organization"], "staff-a", group=group))
    theirs, ours = objects_of(b["organization"]), objects_of(a["organization"])
    for model in admin.site._registry:
        label = model._meta.label_lower
        if label not in theirs:
            continue
        info = model._meta.app_label, model._meta.model_name
        changelist = reverse("admin:%s_%s_changelist" % info)
        response = client.get(changelist)
        if response.status_code == 403:  # the group may not view this model at all
            for pk in theirs[label]:
                assert client.get(reverse("admin:%s_%s_change" % info, args=[pk])).status_code in (403, 404)
            continue
        assert response.status_code == 200, label
        listed = {obj.pk for obj in response.context["cl"].result_list}
        assert listed.isdisjoint(theirs[label]), label
        assert set(ours[label]) <= listed or len(listed) >= response.context["cl"].list_per_page, label
        for pk in theirs[label]:
            for view in ("change", "delete", "history"):
                url = reverse(f"admin:%s_%s_{view}" % info, args=[pk])
                assert client.get(url).status_code == 404, (url, group)


def test_other_organizations_objects_are_not_choices_autocompletes_or_searchable(client, two):
    a, b = two
    client.force_login(staff_login(a["organization"], "staff-a", group="Integration admin"))
    add_page = client.get(reverse("admin:dispatcher_webhook_add")).content.decode()
    assert str(a["module"].pk) in options(add_page, "module") and str(b["module"].pk) not in options(add_page, "module")
    assert options(add_page, "organization") == ["", str(a["organization"].pk)]
    rule_page = client.get(reverse("admin:workflows_workflowrule_add")).content.decode()
    assert str(b["module"].pk) not in options(rule_page, "module") and "Deals (alpha)" not in rule_page  # one organization
    for model_name, field_name, term in [("condition", "field", "Ref"), ("action", "webhook", "Hook"),
                                         ("capture", "field", "Ref")]:
        app = "dispatcher" if model_name == "capture" else "workflows"
        found = client.get(reverse("admin:autocomplete"), {"app_label": app, "model_name": model_name,
                                                             "field_name": field_name, "term": term}).json()
        texts = [r["text"] for r in found["results"]]
        assert texts and not any("bravo" in text for text in texts), texts
    search = client.get(reverse("admin:dispatcher_webhook_changelist"), {"q": "Hook bravo"})
    assert search.context["cl"].result_count == 0
    export = client.get(reverse("admin:dispatcher_delivery_export"))
    text = b"".join(export.streaming_content).decode()
    assert "Hook alpha" in text and "Hook bravo" not in text
    chart = client.get(reverse("admin:dispatcher_usage_chart"), {"organization": b["organization"].pk})
    assert chart.status_code == 200 and b["organization"].name not in chart.content.decode()
    preview = reverse("admin:dispatcher_webhook_preview", args=[b["webhook"].pk])
    assert client.get(preview).status_code == 404
    own_preview = reverse("admin:dispatcher_webhook_preview", args=[a["webhook"].pk])
    assert "There is no record with id" in client.get(own_preview, {"record": b["record"].pk}).content.decode()


def test_forged_posts_and_actions_against_another_organization_change_nothing(client, two):
    a, b = two
    before = fingerprint(b["organization"])
    client.force_login(staff_login(a["organization"], "staff-a", group="Integration admin"))
    for name, pks, action in [
        ("dispatcher_webhook", [b["webhook"].pk], "deactivate"),
        ("dispatcher_webhook", [b["webhook"].pk], "rotate_signing_secret"),
        ("dispatcher_webhook", [b["webhook"].pk], "delete_selected"),
        ("dispatcher_delivery", [b["delivery"].pk], "resend"),
        ("workflows_workflowrule", [b["rule"].pk], "deactivate"),
        ("workflows_workflowrule", [b["rule"].pk], "run_on_existing"),
        ("dispatcher_channel", [b["channel"].pk], "delete_selected"),
        ("dispatcher_endpoint", [b["endpoint"].pk], "delete_selected"),
        ("crm_apikey", [b["key"].pk], "delete_selected"),
    ]:
        client.post(reverse(f"admin:{name}_changelist"), {"action": action, "_selected_action": pks, "post": "yes"})
    # A webhook of one's own organization that points at the other's module: refused by the form.
    response = client.post(reverse("admin:dispatcher_webhook_add"), {
        "organization": a["organization"].pk, "module": b["module"].pk, "name": "Sneaky",
        "url": "https://sneaky.example.com/", "method": "POST", "content_type": "JSON", "auth_type": "none",
        **{f"{p}-{k}": v for p in ("entity_parameters", "custom_parameters", "captures", "headers")
           for k, v in (("TOTAL_FORMS", 0), ("INITIAL_FORMS", 0), ("MIN_NUM_FORMS", 0), ("MAX_NUM_FORMS", 1000))},
    })
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    for view, obj, data in [("dispatcher_endpoint_change", b["endpoint"], {"rate_limit": "0.01"}),
                            ("dispatcher_channel_change", b["channel"], {"is_active": ""}),
                            ("dispatcher_webhook_change", b["webhook"], {"name": "Taken"}),
                            ("dispatcher_webhook_delete", b["webhook"], {"post": "yes"})]:
        assert client.post(reverse(f"admin:{view}", args=[obj.pk]), data).status_code == 404
    assert not Webhook.objects.filter(name="Sneaky").exists()
    assert fingerprint(b["organization"]) == before


def test_an_auditor_of_each_organization_sees_none_of_the_others_secrets(client, two):
    a, b = two
    for mine, theirs in ((a, b), (b, a)):
        client.force_login(staff_login(mine["organization"], f"auditor-{mine['organization'].name}", group="Auditor"))
        pages = [reverse("admin:dispatcher_webhook_changelist"), reverse("admin:dispatcher_delivery_changelist"),
                 reverse("admin:crm_module_changelist"), reverse("admin:crm_field_changelist"),
                 reverse("admin:dispatcher_attempt_changelist"), reverse("admin:crm_record_changelist"),
                 reverse("admin:dispatcher_channel_changelist"), reverse("admin:workflows_workflowrule_changelist"),
                 reverse("admin:dispatcher_delivery_export"), reverse("admin:dispatcher_usage_chart"),
                 reverse("admin:dispatcher_webhook_change", args=[mine["webhook"].pk]),
                 reverse("admin:dispatcher_delivery_change", args=[mine["delivery"].pk])]
        name = theirs["organization"].name
        for url in pages:
            response = client.get(url)
            assert response.status_code == 200, url
            text = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
            for secret in (f"hunter2-{name}!", f"tok-of-{name}", f"chan-{name}", theirs["webhook"].signing_secret,
                           mine["webhook"].signing_secret, f"hunter2-{mine['organization'].name}!"):
                assert secret not in text, (url, secret)
            assert f"Hook {name}" not in text and f"Deal {name}" not in text, url
            assert f"Projects_{name}" not in text and f"Ref {name}" not in text, url
            assert f"Rule {name}" not in text, url  # rule names, in the log's trigger filter too


def test_superusers_see_every_organization_and_shared_data_is_theirs_to_change(client, two, django_user_model):
    a, b = two
    client.force_login(staff_login(a["organization"], "staff-a", group="Integration admin"))
    policy = reverse("admin:dispatcher_retrypolicy_change", args=[RetryPolicy.objects.get(code="zoho").pk])
    assert client.get(policy).status_code == 200  # readable: a webhook's form names it
    client.post(policy, {"code": "zoho", "name": "Zoho", "delays": "[1]", "max_retry_after": 1,
                         "failure_emails": "each"})
    assert RetryPolicy.objects.get(code="zoho").delays == [900]  # shared by every organization: not theirs
    assert client.get(reverse("admin:dispatcher_retrypolicy_add")).status_code == 403
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    listed = client.get(reverse("admin:dispatcher_webhook_changelist")).context["cl"]
    assert listed.result_count == 2
    only_b = client.get(reverse("admin:dispatcher_webhook_changelist"),
                        {"organization__id__exact": b["organization"].pk}).context["cl"]
    assert [w.name for w in only_b.result_list] == ["Hook bravo"]


def test_a_staff_login_without_an_organization_sees_nothing(client, two, django_user_model):
    from django.contrib.auth.models import Group

    loner = django_user_model.objects.create_user("loner", password="pw", is_staff=True)
    loner.groups.add(Group.objects.get(name="Integration admin"))
    client.force_login(loner)
    assert client.get(reverse("admin:dispatcher_webhook_changelist")).context["cl"].result_count == 0
    assert client.get(reverse("admin:dispatcher_webhook_change", args=[two[0]["webhook"].pk])).status_code == 404
    assert datetime.timedelta(0) <= timezone.now() - two[0]["webhook"].created_at  # the data is there
    assert DailyUsage.objects.exists() and Attempt.objects.exists()


def test_run_on_existing_records_does_not_let_captures_write_what_the_user_may_not_change(client, two):
    a, _ = two
    Webhook.objects.filter(pk=a["webhook"].pk).update(capture_response=True)
    rule = a["rule"]
    before = Delivery.objects.count(), ActionRun.objects.count()
    client.force_login(staff_login(a["organization"], "integrator-a", group="Integration admin"))
    page = client.post(reverse("admin:workflows_workflowrule_changelist"),
                       {"action": "run_on_existing", "_selected_action": [rule.pk]}, follow=True).content.decode()
    assert f"“{rule.name}” was not run: its webhooks write Ref alpha into the records" in html.unescape(page)
    assert (Delivery.objects.count(), ActionRun.objects.count()) == before
    client.force_login(staff_login(a["organization"], "records-a", group="Integration admin",
                                   permissions=("change_record",)))
    client.post(reverse("admin:workflows_workflowrule_changelist"),
                {"action": "run_on_existing", "_selected_action": [rule.pk]})
    assert ActionRun.objects.count() == before[1] + 1  # the time-based action scheduled for the one record
