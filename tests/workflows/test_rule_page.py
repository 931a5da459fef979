"""A workflow rule's admin page (issue 26, seed 004): "View webhook log" beside each action, and an actions
table that fits the page."""
import html
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from crm import services as crm_services
from dispatcher.models import Delivery
from tests.factories import webhook_create
from workflows.models import Action, WorkflowRule
from workflows.services import rule_save


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


@pytest.fixture
def rule(modules):
    """A rule with an instant action (Books) and a time-based one (SMS); another rule sends to Books too."""
    books = webhook_create(module=modules["Deals"], name="Books")
    sms = webhook_create(module=modules["Deals"], name="SMS")
    saved = rule_save(rule=WorkflowRule(organization=modules["Deals"].organization, module=modules["Deals"],
                                        name="Won deals", trigger="create", match_all_records=True),
                      conditions=[],
                      actions=[Action(webhook=books, kind="instant"),
                               Action(webhook=sms, kind="time_based", delay_amount=2, delay_unit="hours")]).rule
    rule_save(rule=WorkflowRule(organization=modules["Deals"].organization, module=modules["Deals"], name="Other",
                                trigger="create", match_all_records=True, execution_order=2),
              conditions=[], actions=[Action(webhook=books, kind="instant")])
    return saved


def action_links(page: str) -> list[str]:
    """The "View webhook log" links of the actions table, in row order."""
    start = page.index('id="actions-group"')
    table = page[start:page.index("</table>", start)]
    return [html.unescape(url) for url in re.findall(r'<a href="([^"]+)">View webhook log</a>', table)]


def test_each_action_has_a_webhook_log_link_that_shows_its_deliveries(admin_client, rule, owner, modules):
    crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    assert Delivery.objects.filter(webhook__name="Books").count() == 2  # one per rule
    page = admin_client.get(reverse("admin:workflows_workflowrule_change", args=[rule.pk])).content.decode()
    books_link, sms_link = action_links(page)

    listed = admin_client.get(books_link).context["cl"].result_list
    assert [(d.webhook_name, d.trigger) for d in listed] == [("Books", "Rule “Won deals” on create")]
    assert admin_client.get(sms_link).status_code == 200  # nothing sent yet: the SMS is two hours away
    assert list(admin_client.get(sms_link).context["cl"].result_list) == []


def test_the_actions_table_scrolls_inside_its_box_rather_than_widening_the_page(admin_client, rule):
    page = admin_client.get(reverse("admin:workflows_workflowrule_change", args=[rule.pk])).content.decode()
    assert "workflows/rule_admin.css" in page and 'id="actions-group"' in page
    css = Path(finders.find("workflows/rule_admin.css")).read_text()
    assert re.search(r"#actions-group \.tabular fieldset\.module \{\s*overflow-x: auto;", css)
    assert re.search(r"#actions-group select\.admin-autocomplete \{\s*width: 11em;", css)
