"""factory-boy factories that go through the services, so test data is valid data."""
import factory

from crm import services as crm_services
from crm.models import CrmUser, Edition, Organization
from dispatcher import services
from dispatcher.models import Webhook


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Zylker {n}")
    edition = factory.LazyFunction(lambda: Edition.objects.get(code="enterprise"))
    user_licences = 10
    time_zone = "Europe/Amsterdam"
    currency_code = "EUR"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return crm_services.organization_create(**kwargs)


class CrmUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CrmUser

    organization = factory.SubFactory(OrganizationFactory)
    first_name = "Patricia"
    last_name = factory.Sequence(lambda n: f"Boyle{n}")
    email = factory.Sequence(lambda n: f"user{n}@zylker.example")
    mobile = "+31 6 1234 5678"


def webhook_create(*, entity=(), custom=(), **attributes) -> Webhook:
    """A saved, validated webhook: entity and custom are (name, value) pairs."""
    attributes.setdefault("name", "Test hook")
    attributes.setdefault("url", "https://receiver.example.com/hook")
    if "organization" not in attributes:
        attributes["organization"] = attributes["module"].organization
    return services.webhook_save(
        webhook=Webhook(**attributes),
        entity_parameters=[services.Parameter(n, v) for n, v in entity],
        custom_parameters=[services.Parameter(n, v) for n, v in custom],
    )
