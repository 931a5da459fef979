"""crm.api.lookup.owned_or_404, the one way every router finds what a path names: the organization's object,
or a 404 that is the same for another organization's object as for a missing one, and no query at all for a
value no row can hold."""
import pytest

from crm import services
from crm.api.errors import ApiError
from crm.api.lookup import owned_or_404
from crm.models import Module, Record
from dispatcher.models import Delivery, RetryPolicy, Webhook
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create


@pytest.fixture
def deal(owner, modules):
    return services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})


def not_found(*args, **kwargs) -> tuple[int, str, str]:
    with pytest.raises(ApiError) as raised:
        owned_or_404(*args, not_found="Not here.", **kwargs)
    return raised.value.status, raised.value.code, raised.value.message


def test_the_organizations_object_is_found_and_another_organizations_is_not(owner, modules):
    hook = webhook_create(module=modules["Deals"], name="Books")
    assert owned_or_404(Webhook, owner.organization, pk=hook.pk, not_found="") == hook
    assert owned_or_404(Webhook, owner.organization_id, name="Books", not_found="") == hook
    stranger = OrganizationFactory()
    assert not_found(Webhook, stranger, pk=hook.pk) == (404, "not_found", "Not here.")
    assert not_found(Module, stranger, api_name="Nothing", error_code="unknown_module") == (
        404, "unknown_module", "Not here.")


def test_a_queryset_keeps_what_it_selects_and_the_organization_may_be_further_away(owner, deal,
                                                                                   django_assert_num_queries):
    found = owned_or_404(Record.objects.select_related("module"), owner.organization_id,
                         organization_path="module__organization", pk=deal.pk, not_found="")
    with django_assert_num_queries(0):
        assert found.module.api_name == "Deals"
    stranger = CrmUserFactory(organization=OrganizationFactory()).organization
    assert not_found(Record, stranger, organization_path="module__organization", pk=deal.pk)[0] == 404


@pytest.mark.parametrize(("model", "lookup"), [
    (Module, {"api_name": "Deals\x00"}),  # PostgreSQL refuses a NUL in a query
    (Record, {"pk": 2**63}),  # beyond bigint
    (Webhook, {"pk": -(2**63) - 1}),
    (Delivery, {"public_id": "msg_not-a-uuid"}),
    (Module, {"api_name": "x" * 1000}),  # longer than the column
])
def test_a_value_no_row_can_hold_is_not_found_without_a_query(owner, django_assert_num_queries, model, lookup):
    with django_assert_num_queries(0):
        assert not_found(model, owner.organization_id, **lookup)[0] == 404


def test_a_delivery_is_found_by_its_bare_uuid(owner, modules):
    hook = webhook_create(module=modules["Deals"], name="Books")
    delivery = Delivery.objects.create_historical(organization=owner.organization, webhook=hook, webhook_name="Books",
                                                  record_ref="Deals #1", retry_policy_id=RetryPolicy.default_id())
    for given in (delivery.public_id.hex, str(delivery.public_id)):
        assert owned_or_404(Delivery, owner.organization, public_id=given, not_found="") == delivery
