"""Quota days in the organization's time zone, atomic consumption, and the retry rule."""
import datetime
import threading

import pytest
from django.db import connection

from crm.models import Edition
from dispatcher.ops import quotas
from dispatcher.delivery import retry
from dispatcher.transport.result import ErrorClass, HttpResult, is_retryable
from dispatcher.models import DailyUsage, RetryPolicy
from tests.factories import OrganizationFactory

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("edition", "licences", "quota"), [
    ("professional", 5, 500), ("professional", 150, 10_000), ("enterprise", 10, 5_000), ("enterprise", 50, 20_000),
])
def test_the_daily_quota_is_the_lower_of_the_edition_limit_and_the_licences(db, edition, licences, quota):
    organization = OrganizationFactory(edition=Edition.objects.get(code=edition), user_licences=licences)
    assert quotas.daily_limit(organization=organization) == quota


@pytest.mark.parametrize(("time_zone", "instant", "day"), [
    ("Pacific/Honolulu", "2026-03-02T09:59:59", "2026-03-01"),  # UTC-10: still yesterday
    ("Pacific/Honolulu", "2026-03-02T10:00:00", "2026-03-02"),
    ("Pacific/Kiritimati", "2026-03-01T09:59:59", "2026-03-01"),  # UTC+14: already tomorrow
    ("Pacific/Kiritimati", "2026-03-01T10:00:00", "2026-03-02"),
    ("Europe/Amsterdam", "2026-03-28T22:59:59", "2026-03-28"),  # the night clocks go forward
    ("Europe/Amsterdam", "2026-03-28T23:00:00", "2026-03-29"),
    ("Europe/Amsterdam", "2026-03-29T21:59:59", "2026-03-29"),  # a 23-hour local day
    ("Europe/Amsterdam", "2026-03-29T22:00:00", "2026-03-30"),
])
def test_a_quota_day_is_the_organization_local_day(db, time_zone, instant, day):
    organization = OrganizationFactory(time_zone=time_zone)
    assert quotas.local_day(organization=organization, now=at(instant)).isoformat() == day


def test_the_count_starts_again_at_local_midnight(db):
    edition = Edition.objects.create(code="two", name="Two", daily_call_limit=2, calls_per_licence=10)
    organization = OrganizationFactory(edition=edition, time_zone="Pacific/Honolulu")
    evening = at("2026-03-02T09:00:00")  # 23:00 on 1 March in Honolulu
    assert [quotas.quota_consume(organization=organization, now=evening) for _ in range(3)] == [True, True, False]
    assert quotas.quota_consume(organization=organization, now=at("2026-03-02T10:00:01"))
    assert dict(DailyUsage.objects.values_list("day", "calls")) == {
        datetime.date(2026, 3, 1): 2, datetime.date(2026, 3, 2): 1}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_workers_never_pass_the_limit():
    if connection.vendor != "postgresql":
        pytest.skip("needs a database with concurrent writers; CI runs it on PostgreSQL")
    edition = Edition.objects.create(code="ten", name="Ten", daily_call_limit=10, calls_per_licence=1000)
    organization = OrganizationFactory(edition=edition)
    now = at("2026-05-01T12:00:00")
    start = threading.Barrier(8)
    granted: list[bool] = []

    def worker() -> None:
        start.wait()
        try:
            for _ in range(5):
                granted.append(quotas.quota_consume(organization=organization, now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 10 and len(granted) == 40
    assert DailyUsage.objects.get(organization=organization).calls == 10


def test_the_limit_notice_goes_out_once_a_day(db):
    organization = OrganizationFactory()
    now = at("2026-05-01T12:00:00")
    quotas.quota_consume(organization=organization, now=now)
    assert [quotas.quota_limit_notice_claim(organization=organization, now=now) for _ in range(3)] == [True, False, False]


def result(status=None, error=None, headers=None) -> HttpResult:
    return HttpResult(status_code=status, duration_ms=1, headers=headers or {}, error_class=error)


@pytest.mark.parametrize(("outcome", "retried"), [
    (result(500), True), (result(502), True), (result(503), True), (result(504), True), (result(408), True),
    (result(429), True), (result(error=ErrorClass.CONNECTION_ERROR), True), (result(error=ErrorClass.TIMEOUT), True),
    (result(error=ErrorClass.DNS_FAILURE), True), (result(200, error=ErrorClass.CONNECTION_ERROR), True),
    (result(400), False), (result(401), False), (result(402), False), (result(404), False), (result(410), False),
    (result(301), False), (result(error=ErrorClass.BLOCKED_ADDRESS), False), (result(error=ErrorClass.BLOCKED_PORT), False),
    (result(error=ErrorClass.INVALID_URL), False),
])
def test_which_results_are_retried(outcome, retried):
    assert is_retryable(outcome) is retried


def test_retry_after_as_an_http_date_is_honoured_and_capped(db):
    policy = RetryPolicy.objects.get(code="zoho")
    now = at("2026-05-01T12:00:00")
    in_two_hours = result(503, headers={"Retry-After": "Fri, 01 May 2026 14:00:00 GMT"})
    assert retry.next_attempt_at(policy=policy, attempt_number=1, result=in_two_hours, now=now) == at("2026-05-01T14:00:00")
    in_two_days = result(429, headers={"retry-after": str(48 * 3600)})
    assert retry.next_attempt_at(policy=policy, attempt_number=1, result=in_two_days, now=now) == at("2026-05-01T18:00:00")
    nonsense = result(429, headers={"Retry-After": "soon"})
    assert at("2026-05-01T12:13:30") <= retry.next_attempt_at(policy=policy, attempt_number=1, result=nonsense,
                                                              now=now) <= at("2026-05-01T12:16:30")
    assert retry.next_attempt_at(policy=policy, attempt_number=2, result=nonsense, now=now) is None


def test_retry_policy_delays_are_validated(db):
    from django.core.exceptions import ValidationError

    for delays, message in [("1h", "Enter the delays as a list of whole seconds"), ([0], "between 1 second"),
                            ([60] * 21, "At most 20 retries.")]:
        with pytest.raises(ValidationError, match=message):
            RetryPolicy(code="x", name="x", delays=delays).full_clean()


def test_retry_delays_are_spread_by_the_jitter_and_never_earlier_than_retry_after(db, settings):
    policy = RetryPolicy.objects.get(code="vtiger")  # 1 h, 2 h, 4 h
    now = at("2026-05-01T12:00:00")
    settings.WEBHOOK_RETRY_JITTER = 0.1
    waits = [(retry.next_attempt_at(policy=policy, attempt_number=1, result=result(500), now=now) - now).total_seconds()
             for _ in range(200)]
    assert all(3240 <= wait <= 3960 for wait in waits)  # 1 h ± 10 %
    assert len(set(waits)) > 100  # spread, not one second for everybody
    asked = result(503, headers={"Retry-After": "5400"})  # 1.5 h: never earlier than the receiver asked
    assert all(retry.next_attempt_at(policy=policy, attempt_number=1, result=asked, now=now) >= at("2026-05-01T13:30:00")
               for _ in range(50))
    settings.WEBHOOK_RETRY_JITTER = 0
    assert retry.next_attempt_at(policy=policy, attempt_number=3, result=result(500), now=now) == at("2026-05-01T16:00:00")


def test_the_standard_webhooks_policy_retries_as_the_spec_lists(db):
    policy = RetryPolicy.objects.get(code="standard")
    assert policy.delays == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert retry.schedule_text(policy) == ("at once → +5 s → +5 min 5 s → +35 min 5 s → +2 h 35 min → +7 h 35 min → "
                                           "+17 h 35 min → +1 d 3 h")
    assert retry.schedule(policy)[-1][1] == 99_305  # seconds after the first attempt: 1 day 3 h 35 min 5 s


def test_the_admin_shows_when_each_retry_of_a_policy_happens(admin_client, db):
    policy = RetryPolicy.objects.get(code="standard")
    listing = admin_client.get("/admin/dispatcher/retrypolicy/").content.decode()
    assert "at once → +5 s → +5 min 5 s" in listing
    page = admin_client.get(f"/admin/dispatcher/retrypolicy/{policy.pk}/change/").content.decode()
    assert "<td>retry 7</td><td>10 h after the failed attempt</td><td>1 d 3 h</td>" in page
    assert "±10%" in page and "410 Gone is never retried" in page
