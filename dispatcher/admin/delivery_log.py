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
    """An id filter's value; ValueError for one that is not a number (the list's "?e=1", as Django's own)."""
    return int(value) if value not in (None, "") else None


def _moment(value: str | None) -> datetime.datetime | None:
    """A DateFieldListFilter bound ("2026-12-05" or "2026-12-05 00:00:00+00:00"), aware; ValueError if neither."""
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None:
        if (day := parse_date(value)) is None:
            raise ValueError(f"{value!r} is not a date")
        moment = datetime.datetime.combine(day, datetime.time())
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _flag(value: str | None) -> bool:
    """An "Empty" choice (webhook__isnull): True for the values Django's filter sends, ValueError otherwise."""
    if value in (None, "", "False", "false", "0"):
        return False
    if value in ("True", "true", "1"):
        return True
    raise ValueError(f"{value!r} is not a yes or no")


def admin_filters(params: QueryDict) -> tuple[DeliveryFilters, int | None]:
    """The list page's query parameters as DeliveryFilters, and the organization a superuser filtered on;
    ValueError for a value that is not what its filter sends. Which parameter is which field:
    DeliveryFilters' docstring."""
    status, status_class = params.get("status__exact") or "", params.get("http")
    filters = DeliveryFilters(
        status=[status] if status else (),
        status_class=next((known for known in STATUS_CLASSES if known == status_class), None),
        webhook=_int(params.get("webhook__id__exact")),
        no_webhook=_flag(params.get("webhook__isnull")),
        channel_pk=_int(params.get("channel__id__exact")),
        no_channel=_flag(params.get("channel__isnull")),
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
        params = request.GET.copy()
        for name in exclude_parameters or ():  # a facet's count: every filter but its own
            params.pop(name, None)
        try:
            filters, organization = admin_filters(params)
            deliveries = scoped(deliveries_list(organization=organization, filters=filters), request.user)
            deliveries = deliveries.filter(build_q_object_from_lookup_parameters(remaining))
        except (SuspiciousOperation, ImproperlyConfigured):
            raise
        except Exception as error:  # as Django: any other error is a wrong lookup in the URL
            raise IncorrectLookupParameters(error) from error
        self.clear_all_filters_qs = self.get_query_string(new_params=remaining, remove=self.get_filters_params())
        deliveries = self.apply_select_related(deliveries)
        return deliveries.order_by(*self.get_ordering(request, deliveries))
