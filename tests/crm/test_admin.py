"""CRM data in the admin: organizations get their modules, records are found (the record form:
test_record_form.py)."""
import pytest
from django.urls import reverse

from crm.models import Edition, Organization
from crm import services


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def test_an_organization_added_in_the_admin_gets_the_standard_modules(admin_client):
    response = admin_client.post(reverse("admin:crm_organization_add"), {
        "name": "Acme", "edition": Edition.objects.get(code="professional").pk, "user_licences": 5,
        "time_zone": "Asia/Kolkata", "date_format": "dd/MM/yyyy", "datetime_format": "yyyy-MM-dd HH:mm:ss",
        "currency_code": "INR", "users-TOTAL_FORMS": 0, "users-INITIAL_FORMS": 0,
    }, follow=True)
    assert b"was added successfully" in response.content
    organization = Organization.objects.get(name="Acme")
    assert organization.modules.filter(api_name="Deals").exists()
    assert organization.edition.daily_quota(organization.user_licences) == 500  # lower of 10,000 and 5 x 100


def test_an_unknown_time_zone_is_refused(admin_client):
    response = admin_client.post(reverse("admin:crm_organization_add"), {
        "name": "Acme", "edition": Edition.objects.get(code="professional").pk, "user_licences": 5,
        "time_zone": "Mars/Olympus", "date_format": "dd/MM/yyyy", "datetime_format": "yyyy-MM-dd HH:mm:ss",
        "currency_code": "INR", "users-TOTAL_FORMS": 0, "users-INITIAL_FORMS": 0,
    })
    assert "“Mars/Olympus” is not a known time zone; use an IANA name such as Europe/Amsterdam." in response.content.decode()


def test_records_are_found_by_their_values(admin_client, owner, modules):
    services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "Jansen", "Company": "Bakkerij"})
    services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "Other"})
    changelist = admin_client.get(reverse("admin:crm_record_changelist"), {"q": "bakkerij"})
    assert changelist.context["cl"].result_count == 1
