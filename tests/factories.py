"""factory-boy factories that go through the services, so test data is valid data."""
import datetime

import factory
from django.utils import timezone

from crm import services as crm_services
from crm.models import CrmUser, Edition, Organization
from dispatcher.senders import webhooks as services
from dispatcher.senders.webhook_rows import Header, Parameter
from dispatcher.models import Delivery, DeliverySource, DeliveryStatus, RetryPolicy, Webhook


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


def webhook_create(*, entity=(), custom=(), headers=None, **attributes) -> Webhook:
    """A saved, validated webhook: entity and custom are (name, value) pairs, headers (name, value, secret)."""
    attributes.setdefault("name", "Test hook")
    attributes.setdefault("url", "https://receiver.example.com/hook")
    if "organization" not in attributes:
        attributes["organization"] = attributes["module"].organization
    return services.webhook_save(
        webhook=Webhook(**attributes),
        entity_parameters=[Parameter(n, v) for n, v in entity],
        custom_parameters=[Parameter(n, v) for n, v in custom],
        headers=None if headers is None else [Header(*header) for header in headers],
    )


def staff_login(organization: Organization, username: str, *, group: str | None = None,
                permissions: tuple[str, ...] = ()):
    """A staff login of an organization: a Django user linked to a CRM user, which is how the admin knows
    which organization's objects it may see."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    CrmUserFactory(organization=organization, user=user, last_name=username.title(),
                   email=f"{username}@{organization.pk}.example")
    return user


def failed_delivery(*, hours_ago: float = 0, **sender) -> Delivery:
    """A delivery of a webhook (webhook=…) or channel (channel=…) that ended Failed hours_ago, as an outage
    leaves them (what a recover queues again); record= and other columns may be given too."""
    pointer = sender.get("webhook") or sender.get("channel")
    delivery = Delivery.objects.create_historical(
        organization_id=pointer.organization_id, webhook_name=getattr(pointer, "name", "ch"), record_ref="Deals #1",
        retry_policy_id=RetryPolicy.default_id(), status=DeliveryStatus.FAILED, last_error_class="http_5xx",
        source=DeliverySource.SUBSCRIPTION if "channel" in sender else DeliverySource.WORKFLOW, **sender)
    Delivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - datetime.timedelta(hours=hours_ago))
    return delivery
