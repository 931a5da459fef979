"""Claims: which due deliveries a worker takes, fairly across organizations, in as few statements as
the fairness allows.

A claim is a conditional update guarded by a claim token and a lease, so two workers never own the same
delivery, and a worker that dies leaves its deliveries claimable again when the lease runs out. On
PostgreSQL the claim also loads what the attempts need (delivery/loader.py) in the same statement:
``WITH … UPDATE … RETURNING`` joined to the endpoint, record, owner and module.

- **At once** (one statement): when everything due fits in the claim's limit and in what the claiming
  process may start for each organization and slow destination (its ClaimRoom), taking all of it is what
  the fair shares would take too. ``SELECT … FOR UPDATE SKIP LOCKED`` picks them, the same statement
  checks that they fit and claims them, or claims nothing and says they did not fit.
- **Fairly** (a transaction of a few statements): otherwise the claim is shared out between the
  organizations with due work (_choose, _choose_within), then claimed and loaded by id in one statement.

SQLite (no FOR UPDATE, no data-modifying WITH) always claims fairly, and the loader reads the claimed rows
with the ORM. Wake-ups are delivery/wakeups.py.
"""
import collections
import datetime
import logging
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Value, When

from dispatcher.delivery import counters, states
from dispatcher.models import Delivery, DeliveryStatus
from dispatcher.models.deliveries import WAITING_STATUSES

logger = logging.getLogger(__name__)

FAIR_ORGANIZATIONS_MAX = 50  # organizations a claim shares out between; more wait for the next claim


@dataclass(frozen=True)
class ClaimRoom:
    """How much of each organization's work the claiming process can start now (delivery/book.py): for the
    organizations it holds slots for, how many more (0: none until their requests end); for any other,
    `newcomer`. A slow destination's deliveries (by endpoint id) are claimed only as many as its limit leaves
    room for in this process (0: left in the database)."""

    organizations: Mapping[int, int]
    newcomer: int
    slow_destinations: Mapping[int, int] = field(default_factory=dict)

    def of(self, organization_id: int) -> int:
        return self.organizations.get(organization_id, self.newcomer)

    def any(self) -> bool:
        return self.newcomer > 0 or any(n > 0 for n in self.organizations.values())


@dataclass(frozen=True)
class ClaimLoad:
    """What the claim statement returns for each delivery it claims (PostgreSQL; built by delivery/loader.py):
    the delivery's columns (`returning`, by column name), then `columns` over the claimed rows (``claimed``)
    and the tables `joins` adds to them."""

    returning: tuple[str, ...]
    columns: tuple[str, ...]
    joins: str = ""


@dataclass
class Claim:
    """Deliveries claimed with one token: their ids, and on PostgreSQL with a ClaimLoad the load's columns per
    delivery (None: the loader reads them). complete: the claim took everything due that it could see, so
    nothing is left for a claim before new work is made due."""

    token: uuid.UUID
    ids: list[int]
    rows: list[tuple] | None = None
    complete: bool = False


def deliveries_claim(*, now: datetime.datetime, limit: int, ids: list[int] | None = None,
                     first: int | None = None, room: ClaimRoom | None = None) -> list[tuple[int, uuid.UUID]]:
    """Claim up to limit due deliveries for this worker, delivery `first` before the others if it is due;
    returns (id, claim token) pairs (claim_due says how they are chosen)."""
    claim = claim_due(now=now, limit=limit, ids=ids, first=first, room=room)
    return [(pk, claim.token) for pk in claim.ids]


def claim_due(*, now: datetime.datetime, limit: int, ids: list[int] | None = None, first: int | None = None,
              room: ClaimRoom | None = None, load: ClaimLoad | None = None, at_once: bool = True) -> Claim:
    """Claim up to limit due deliveries (of ids only, if given), loaded as `load` says on PostgreSQL.

    Fair across organizations: the claim is shared out equally between the organizations that have due
    work, so one organization's import of 100,000 deliveries delays another's single delivery by one
    claim, not by the whole import. What a share leaves unused goes to the others. With a room (a drain
    loop's), no organization gets more than the process can start for it now. at_once=False skips the
    one-statement attempt (the caller knows more is due than fits)."""
    token = uuid.uuid4()
    if limit <= 0:
        return Claim(token, [], [] if load is not None else None)
    lease_until = now + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    if connection.vendor != "postgresql":
        return _claim_fairly_elsewhere(now, limit, ids, first, room, token, lease_until)
    claim = _claim_at_once(now, limit, ids, room, load or _IDS_ONLY, token, lease_until) \
        if at_once or ids is not None else None
    if claim is None:
        with transaction.atomic():
            chosen = _choose(now, limit, ids, first) if room is None or ids is not None \
                else _choose_within(now, limit, first, room)
            # The chosen rows are locked (FOR UPDATE) in this transaction: nobody can have moved them.
            rows = _claim_ids(chosen, load or _IDS_ONLY, token, lease_until) if chosen else []
        claim = _claimed(token, rows, complete=False)
    if load is None:
        claim.rows = None
    return claim


_IDS_ONLY = ClaimLoad(returning=("id",), columns=())


def _claim_at_once(now: datetime.datetime, limit: int, ids: list[int] | None, room: ClaimRoom | None,
                   load: ClaimLoad, token: uuid.UUID, lease_until: datetime.datetime) -> Claim | None:
    """Everything due, claimed in one statement if it fits (the fair shares would take all of it too); None if
    it did not fit (nothing claimed). With ids, the first `limit` of them by due time, as _choose takes them."""
    rows = Delivery.objects.due(now)
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    wanted = limit if ids is not None else limit + 1  # one more than fits says it did not
    select, params = rows.order_by("due_at").values_list("pk", "status", "organization_id", "endpoint_id") \
        [:wanted].query.sql_with_params()
    fit, fit_params = _fit(limit, None if ids is not None else room)
    table, assignments, assigned, returning, columns = _claim_parts(load, token, lease_until)
    nulls = ", ".join(["NULL"] * (2 + len(load.columns)))
    sql = (f"WITH candidates (id, status, organization_id, endpoint_id) AS ({select} FOR UPDATE SKIP LOCKED), "
           f"fits AS (SELECT {fit} AS ok FROM candidates), "
           f"claimed AS (UPDATE {table} AS t SET {assignments} FROM candidates AS c, fits WHERE t.id = c.id AND fits.ok "
           f"RETURNING c.status AS claimed_from, {returning}) "
           f"SELECT {columns} FROM claimed {load.joins} UNION ALL SELECT {nulls} FROM fits WHERE NOT fits.ok")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *fit_params, *assigned])
        found = cursor.fetchall()
    if found and found[-1][1] is None:  # the row that says they did not fit
        return None
    return _claimed(token, found, complete=True)


def _fit(limit: int, room: ClaimRoom | None) -> tuple[str, list[Any]]:
    """The condition under which the candidates are all claimed: no more than limit, and for each
    organization and slow destination no more than its room."""
    if room is None:
        return "count(*) <= %s", [limit]
    organizations, slow = list(room.organizations.items()), list(room.slow_destinations.items())
    sql = ("count(*) <= %s"
           " AND NOT EXISTS (SELECT 1 FROM candidates AS c GROUP BY c.organization_id HAVING count(*) > COALESCE("
           "(SELECT r.room FROM unnest(%s::bigint[], %s::integer[]) AS r(id, room) WHERE r.id = c.organization_id),"
           " %s))"
           " AND NOT EXISTS (SELECT 1 FROM candidates AS c JOIN unnest(%s::bigint[], %s::integer[]) AS s(id, room)"
           " ON s.id = c.endpoint_id GROUP BY s.id, s.room HAVING count(*) > s.room)")
    return sql, [limit, [o for o, _ in organizations], [n for _, n in organizations], room.newcomer,
                 [d for d, _ in slow], [n for _, n in slow]]


def _claim_ids(chosen: list[int], load: ClaimLoad, token: uuid.UUID, lease_until: datetime.datetime) -> list[tuple]:
    """Claim and load deliveries chosen (and locked) already, in one statement."""
    table, assignments, assigned, returning, columns = _claim_parts(load, token, lease_until)
    sql = (f"WITH claimed AS (UPDATE {table} AS t SET {assignments} WHERE t.id = ANY(%s) "
           f"RETURNING NULL::varchar AS claimed_from, {returning}) SELECT {columns} FROM claimed {load.joins}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*assigned, chosen])
        return cursor.fetchall()


def _claim_parts(load: ClaimLoad, token: uuid.UUID, lease_until: datetime.datetime) \
        -> tuple[str, str, list[Any], str, str]:
    """The table, the claim's SET clause and its parameters (delivery/states.py), what the UPDATE returns and
    what the statement selects: the former status, the id, then the load's columns."""
    quote = connection.ops.quote_name
    assignments, assigned = states.dispatch_assignments(token=token, lease_until=lease_until)
    returning = ", ".join(f"t.{quote(column)}" for column in dict.fromkeys(("id", *load.returning)))
    columns = ", ".join(("claimed.claimed_from", f"claimed.{quote('id')}", *load.columns))
    return quote(Delivery._meta.db_table), assignments, assigned, returning, columns


def _claimed(token: uuid.UUID, rows: list[tuple], *, complete: bool) -> Claim:
    taken_over = sum(1 for row in rows if row[0] == DeliveryStatus.DISPATCHED)
    if taken_over:  # their worker died or hung past its lease
        counters.count("lease_taken_over", amount=taken_over)
        logger.warning("deliver.lease_taken_over", extra={"count": taken_over})
    return Claim(token, [row[1] for row in rows], [row[2:] for row in rows], complete=complete)


def _claim_fairly_elsewhere(now: datetime.datetime, limit: int, ids: list[int] | None, first: int | None,
                            room: ClaimRoom | None, token: uuid.UUID, lease_until: datetime.datetime) -> Claim:
    """SQLite: chosen fairly, claimed with the ORM; the loader reads the claimed rows."""
    with transaction.atomic():
        chosen = _choose(now, limit, ids, first) if room is None or ids is not None \
            else _choose_within(now, limit, first, room)
        if not chosen:
            return Claim(token, [])
        # SQLite takes its write lock only now (FOR UPDATE is ignored), so the rows are checked again.
        claimed = states.deliveries_dispatch(rows=Delivery.objects.due(now).filter(pk__in=chosen), token=token,
                                             lease_until=lease_until)
    if claimed == len(chosen):
        return Claim(token, chosen)
    counters.count("claim_lost", amount=len(chosen) - claimed)
    return Claim(token, list(Delivery.objects.filter(claim_token=token).values_list("pk", flat=True)))


def _choose(now: datetime.datetime, limit: int, ids: list[int] | None, first: int | None) -> list[int]:
    candidates = Delivery.objects.due(now)
    if ids is not None:
        candidates = candidates.filter(pk__in=ids)

    def take(rows, n: int) -> list[int]:
        return [pk for pk, _ in _take(rows, n)]

    organizations = _organizations_with_due_work(now) if ids is None else []
    order = ["due_at"] if first is None else [Case(When(pk=first, then=Value(0)), default=Value(1)), "due_at"]
    if len(organizations) <= 1:  # nothing to share: one statement, `first` first
        return take(candidates.order_by(*order), limit)
    chosen = take(candidates.filter(pk=first), 1) if first is not None else []
    share = math.ceil((limit - len(chosen)) / len(organizations))
    for organization_id in organizations:
        chosen += take(candidates.filter(organization_id=organization_id).exclude(pk__in=chosen)
                       .order_by("due_at"), min(share, limit - len(chosen)))
    if len(chosen) >= limit:
        return chosen
    return chosen + take(candidates.exclude(pk__in=chosen).order_by("due_at"), limit - len(chosen))


def _choose_within(now: datetime.datetime, limit: int, first: int | None, room: ClaimRoom) -> list[int]:
    """_choose, within what the process can start: organizations with no room are left out, each one's part
    is at most its room, and a slow destination's deliveries are taken apart, at most its room."""
    candidates = Delivery.objects.due(now)
    if full := [organization_id for organization_id, n in room.organizations.items() if n <= 0]:
        candidates = candidates.exclude(organization_id__in=full)
    slow = list(room.slow_destinations)
    general = candidates.exclude(endpoint_id__in=slow) if slow else candidates
    chosen: list[int] = []
    taken: collections.Counter[int] = collections.Counter()

    def add(rows, n: int) -> int:
        found = _take(rows.exclude(pk__in=chosen), min(n, limit - len(chosen)))
        for pk, organization_id in found:
            chosen.append(pk)
            taken[organization_id] += 1
        return len(found)

    def left(organization_id: int) -> int:
        return room.of(organization_id) - taken[organization_id]

    if first is not None:
        add(general.filter(pk=first), 1)
    # Deliveries whose worker died (lease over) are not waiting, so no listed organization has them.
    add(general.filter(status=DeliveryStatus.DISPATCHED).order_by("due_at"), room.newcomer)
    for endpoint_id, n in room.slow_destinations.items():
        if n > 0:
            add(candidates.filter(endpoint_id=endpoint_id).order_by("due_at"), n)
    listed = _organizations_with_due_work(now)
    organizations = [organization_id for organization_id in listed if left(organization_id) > 0]
    if organizations and len(chosen) < limit:
        share = math.ceil((limit - len(chosen)) / len(organizations))
        filled = [organization_id for organization_id in organizations
                  if add(general.filter(organization_id=organization_id).order_by("due_at"),
                         min(share, left(organization_id))) == share]
        for organization_id in filled:  # what the others left unused, to those that had more
            if len(chosen) < limit and left(organization_id) > 0:
                add(general.filter(organization_id=organization_id).order_by("due_at"), left(organization_id))
    if len(chosen) < limit and len(listed) >= FAIR_ORGANIZATIONS_MAX:  # organizations beyond those listed
        add(general.exclude(organization_id__in=listed).order_by("due_at"), room.newcomer)
    return chosen


def _take(rows, n: int) -> list[tuple[int, int]]:
    """Up to n of these rows, locked for this claim: (id, organization id)."""
    # SKIP LOCKED lets workers claim side by side on PostgreSQL; SQLite ignores it and serialises writers.
    found = list(rows.select_for_update(skip_locked=True).values_list("pk", "status", "organization_id")[:n]) \
        if n > 0 else []
    taken_over = sum(1 for _, status, _ in found if status == DeliveryStatus.DISPATCHED)
    if taken_over:  # their worker died or hung past its lease
        counters.count("lease_taken_over", amount=taken_over)
        logger.warning("deliver.lease_taken_over", extra={"count": taken_over})
    return [(pk, organization_id) for pk, _, organization_id in found]


def _organizations_with_due_work(now: datetime.datetime) -> list[int]:
    """The organizations with deliveries waiting and due. On PostgreSQL a skip scan of the partial index
    delivery_due_organization: one index probe per organization, however many deliveries each has."""
    if connection.vendor != "postgresql":
        return list(Delivery.objects.filter(status__in=WAITING_STATUSES, due_at__lte=now).order_by("organization_id")
                    .values_list("organization_id", flat=True).distinct()[:FAIR_ORGANIZATIONS_MAX])
    table = connection.ops.quote_name(Delivery._meta.db_table)
    waiting = "status IN (" + ", ".join(["%s"] * len(WAITING_STATUSES)) + ")"
    sql = f"""
        WITH RECURSIVE organizations(id) AS (
            (SELECT organization_id FROM {table} WHERE {waiting} AND due_at <= %s ORDER BY organization_id LIMIT 1)
            UNION ALL
            SELECT (SELECT organization_id FROM {table} WHERE {waiting} AND due_at <= %s
                    AND organization_id > organizations.id ORDER BY organization_id LIMIT 1)
            FROM organizations WHERE organizations.id IS NOT NULL
        )
        SELECT id FROM organizations WHERE id IS NOT NULL LIMIT %s"""
    params: list[Any] = [*WAITING_STATUSES, now, *WAITING_STATUSES, now, FAIR_ORGANIZATIONS_MAX]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]
