"""An auditor (or an integration admin) of one organization in one step: `manage.py login_create` (issue 26)."""
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from crm.models import CrmUser
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create


def login_create(*args: str) -> str:
    out = StringIO()
    call_command("login_create", *args, stdout=out)
    return out.getvalue()


def password_of(output: str) -> str:
    return re.search(r"Password: (\S+)", output).group(1)


def log_in(client, username: str, password: str) -> None:
    """Through the admin's login page, as the person would."""
    response = client.post(reverse("admin:login"), {"username": username, "password": password, "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/", response.content.decode()[-500:]


def test_an_auditor_is_made_in_one_step_and_reads_only_its_organization(client, organization, modules):
    webhook_create(module=modules["Deals"], name="Books")
    other = OrganizationFactory(name="Acme")
    CrmUserFactory(organization=other)
    webhook_create(module=other.modules.get(api_name="Deals"), name="Theirs")

    output = login_create("--organization", organization.name, "--role", "auditor", "--email", "ann@zylker.example")
    assert f"Login “ann@zylker.example” made: Auditor of {organization.name} only." in output

    log_in(client, "ann@zylker.example", password_of(output))
    listing = client.get(reverse("admin:dispatcher_webhook_changelist"))
    assert [w.name for w in listing.context["cl"].result_list] == ["Books"]
    assert client.get(reverse("admin:dispatcher_webhook_add")).status_code == 403  # views, never changes
    assert CrmUser.objects.get(user__username="ann@zylker.example").organization == organization


def test_an_existing_crm_user_gets_the_login_and_an_integration_admin_may_change(client, organization, owner):
    output = login_create("--organization", str(organization.pk), "--role", "integration-admin",
                          "--role", "record-editor", "--email", owner.email, "--username", "ted")
    assert f"Integration admin and Record editor of {organization.name} only." in output
    owner.refresh_from_db()
    assert owner.user.username == "ted" and owner.user.is_staff and not owner.user.is_superuser
    assert sorted(owner.user.groups.values_list("name", flat=True)) == ["Integration admin", "Record editor"]
    log_in(client, "ted", password_of(output))
    assert client.get(reverse("admin:dispatcher_webhook_add")).status_code == 200


@pytest.mark.parametrize("given, message", [
    ({"--organization": "Nowhere"}, "There is no organization “Nowhere”"),
    ({"--role": "owner"}, "invalid choice: 'owner'"),
    ({"--email": "not an address"}, "Enter a valid email address."),
])
def test_bad_input_is_refused_with_the_reason(organization, given, message):
    options = {"--organization": organization.name, "--role": "auditor", "--email": "a@b.example", **given}
    with pytest.raises(CommandError, match=re.escape(message)):
        login_create(*[item for pair in options.items() for item in pair])
    assert not CrmUser.objects.filter(user__isnull=False).exists()


def test_a_login_is_never_taken_over(organization, owner):
    login_create("--organization", organization.name, "--role", "auditor", "--email", owner.email)
    with pytest.raises(CommandError, match="has a login already"):
        login_create("--organization", organization.name, "--role", "integration-admin", "--email", owner.email,
                     "--username", "other")
    with pytest.raises(CommandError, match="exists already"):
        login_create("--organization", organization.name, "--role", "auditor", "--email", "new@zylker.example",
                     "--username", owner.email)
