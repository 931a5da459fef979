"""The delivery engine, read top to bottom as a delivery goes through it:

- ``enqueue``: delivery rows (the queue and the log) written in the caller's transaction, resends, cancellations;
- ``wakeups``: how drain loops hear of due work: NOTIFY to a loop that is awake, broker wake-ups, the pump;
- ``claims``: which due deliveries a worker takes (fair across organizations), claimed and loaded at once;
- ``loader``: the claimed deliveries with what their attempts need, from the claim's rows and the caches;
- ``run``: the drain loop of a worker process, from claim to stored outcome, awake while work keeps coming;
- ``quota_reservation``, ``destinations``: what a loop keeps, the daily quota reserved, and its endpoints,
  slots and deliveries waiting for a destination;
- ``attempt``: the checks before sending, signing, and what an answer means;
- ``pool``: the sender threads, many requests in flight, a cap per destination;
- ``outcomes``: attempts stored on their own terms (cleaned, cut, row by row if a batch write fails);
- ``followups``: capture, endpoint health, e-mails and usage, after the outcome is stored;
- ``rows``: the one builder of new deliveries (every path's columns, the record's reference, the edition's refusal);
- ``states``: the state machine: the statuses a delivery is created in, the only functions that write a status;
- ``counters``: the engine's decisions, counted for /metrics;
- ``purge``: ended deliveries past the retention period;
- ``recover``: after an outage, a webhook's or a channel's failed deliveries queued again (API, command, admin).

The retry rule (dispatcher/delivery/retry.py), quotas (dispatcher/ops/quotas.py) and endpoint health
(dispatcher/delivery/endpoint_health.py) are used by the engine but also by the admin and the API, so they stay beside it.
"""
from dispatcher.delivery.claims import deliveries_claim
from dispatcher.delivery.enqueue import (
    Enqueue, deliveries_enqueue, deliveries_insert, deliveries_resend, delivery_enqueue, delivery_log_cancelled,
    delivery_log_test,
)
from dispatcher.delivery.purge import deliveries_purge
from dispatcher.delivery.recover import RECOVER_MAX, Recovered, deliveries_recover, recover_check
from dispatcher.delivery.rows import delivery_new, record_ref_of
from dispatcher.delivery.run import deliveries_attempt, deliveries_drain, delivery_attempt, delivery_run
from dispatcher.delivery.states import RESENDABLE, delivery_build
from dispatcher.delivery.wakeups import deliveries_pump, deliveries_wake, delivery_wake_at

__all__ = [
    "Enqueue", "RECOVER_MAX", "RESENDABLE", "Recovered", "deliveries_attempt", "deliveries_claim",
    "deliveries_drain", "deliveries_enqueue", "deliveries_insert", "deliveries_pump", "deliveries_purge",
    "deliveries_recover", "deliveries_resend", "deliveries_wake", "delivery_attempt", "delivery_build",
    "delivery_enqueue", "delivery_log_cancelled", "delivery_log_test", "delivery_new", "delivery_run",
    "delivery_wake_at", "recover_check", "record_ref_of",
]
