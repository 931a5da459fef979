"""The admin's delivery log reads through the one selector the REST API and the CSV export use
(dispatcher.selectors.deliveries_list): the list page's query parameters become DeliveryFilters here, so
the same filters select the same deliveries in the admin, its CSV export and GET /api/v1/deliveries/.

Django still parses the parameters for the sidebar (which option is selected, the filters' choices and
their validation: a wrong parameter shows the list's "?e=1" error as before); the rows come from the
selector, scoped to the login's organizations.
"""
import datetime

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import build_q_object_from_lookup_parameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from config.admin_base import scoped
from dispatcher.models.delivery_filters import DeliveryFilters, StatusClass
from dispatcher.selectors import deliveries_list

STATUS_CLASSES: tuple[StatusClass, ...] = ("2", "3", "4", "5", "none")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _moment(value: str | None) -> datetime.datetime | None:
    """A DateFieldListFilter bound ("2026-12-05" or "2026-12-05 00:00:00+00:00"), aware."""
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime.datetime.combine(day, datetime.time())
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def admin_filters(params: QueryDict) -> tuple[DeliveryFilters, int | None]:
    """The list page's query parameters as DeliveryFilters, and the organization a superuser filtered on.
    Which parameter is which field: DeliveryFilters' docstring."""
    status, status_class = params.get("status__exact") or "", params.get("http")
    filters = DeliveryFilters(
        status=[status] if status else (),
        status_class=next((known for known in STATUS_CLASSES if known == status_class), None),
        webhook=_int(params.get("webhook__id__exact")),
        no_webhook=params.get("webhook__isnull") in ("True", "1"),
        channel_pk=_int(params.get("channel__id__exact")),
        no_channel=params.get("channel__isnull") in ("True", "1"),
        module=params.get("module") or None,
        source=params.get("source__exact") or None,
        trigger=params.get("trigger") or None,
        created_after=_moment(params.get("created_at__gte")),
        created_before=_moment(params.get("created_at__lt")),
        search=params.get("q", ""),
    )
    return filters, _int(params.get("organization__id__exact"))


class DeliveryLog(ChangeList):
    """The delivery changelist with its rows from deliveries_list.

    Django's get_filters still reads the parameters (the sidebar's state and choices, and their validation);
    the filters it offers become DeliveryFilters, and a lookup a link adds beyond them (a rule's
    ``trigger__startswith``, a digest's ``webhook_name``, an endpoint's ``endpoint__id__exact``) narrows the
    selector's rows further, as Django would have."""

    def get_queryset(self, request, exclude_parameters=None):
        (self.filter_specs, self.has_filters, remaining, _, self.has_active_filters) = self.get_filters(request)
        filters, organization = admin_filters(request.GET)
        deliveries = scoped(deliveries_list(organization=organization, filters=filters), request.user)
        try:
            deliveries = deliveries.filter(build_q_object_from_lookup_parameters(remaining))
        except (SuspiciousOperation, ImproperlyConfigured):
            raise
        except Exception as error:  # as Django: any other error is a wrong lookup in the URL
            raise IncorrectLookupParameters(error) from error
        self.clear_all_filters_qs = self.get_query_string(new_params=remaining, remove=self.get_filters_params())
        deliveries = self.apply_select_related(deliveries)
        return deliveries.order_by(*self.get_ordering(request, deliveries))
