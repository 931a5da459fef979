"""Idempotency-Key on POST (the IETF httpapi draft, as Stripe and Svix do it): a client that retries a
POST with the same key and the same request within IDEMPOTENCY_KEY_HOURS gets the first answer again, and
nothing is created or fired a second time. The same key with another request is refused (422); while the
first is still being answered, a retry gets 409 and tries again.

The key is claimed (a row, unique per API key) before the work starts and committed at once, so that two
concurrent retries cannot both do it; the answer is stored when the work ends, successes and refusals
alike. A request that fails with an unexpected error gives its key back; one whose process died is taken
over by a retry once ABANDONED_AFTER_SECONDS have passed."""
import datetime
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from ninja import Status

from crm.api.errors import PROBLEM_CONTENT_TYPE, ApiError, problem_document
from crm.models import ApiKey, IdempotentRequest

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
ABANDONED_AFTER_SECONDS = 300  # longer than any request may run (gunicorn's timeout, a channel verification)


def fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256(f"{request.method}\n{request.get_full_path()}\n".encode())
    digest.update(request.body)
    return digest.hexdigest()


def idempotent(request: HttpRequest, key: ApiKey, produce: Callable[[], tuple[int, Any]]) -> Status | JsonResponse:
    """produce()'s (status, data) as the answer, or, for a retry of an answered request, that answer again."""
    header = request.headers.get(HEADER)
    if header is None:
        return Status(*produce())
    _check_key(header)
    now = timezone.now()
    IdempotentRequest.objects.filter(key=key, idempotency_key=header,
                                     created_at__lt=now - datetime.timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
                                     ).delete()  # expired: the key may be used afresh
    mine = fingerprint(request)
    try:
        with transaction.atomic():
            claim = IdempotentRequest.objects.create(key=key, idempotency_key=header, fingerprint=mine)
    except IntegrityError:
        earlier = IdempotentRequest.objects.get(key=key, idempotency_key=header)
        if not _taken_over(earlier, mine, now):
            return _answered(earlier, mine)
        claim = earlier
    try:
        status, data = produce()
    except ApiError as error:
        claim.status, claim.response = error.status, problem_document(error.status, error.code, error.message,
                                                                      **error.details)
        claim.save(update_fields=["status", "response"])
        raise
    except BaseException:
        claim.delete()
        raise
    claim.status, claim.response = status, json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    claim.save(update_fields=["status", "response"])
    return Status(status, data)


def _check_key(header: str) -> None:
    """An Idempotency-Key sent empty (a shell command that printed nothing), blank, too long or not printable
    ASCII would protect nothing, or not what the client means: refused with 400 before anything is done."""
    problem = None
    if not header.strip():
        problem = f"{HEADER} is empty"
    elif len(header) > MAX_LENGTH:
        problem = f"{HEADER} has {len(header)} characters"
    elif not header.isascii() or not header.isprintable():
        problem = f"{HEADER} has characters that are not printable ASCII"
    if problem:
        raise ApiError(400, "invalid_idempotency_key", f"{problem}: send 1 to {MAX_LENGTH} printable ASCII "
                       "characters, e.g. a UUID, or leave the header out.", max_length=MAX_LENGTH)


def _taken_over(earlier: IdempotentRequest, mine: str, now: datetime.datetime) -> bool:
    """A claim left unanswered longer than any request may take is a request that died midway (a killed
    web process): the retry takes the key over, once (a conditional update decides between retries)."""
    stale = now - datetime.timedelta(seconds=ABANDONED_AFTER_SECONDS)
    if earlier.status is not None or earlier.fingerprint != mine or earlier.created_at >= stale:
        return False
    return bool(IdempotentRequest.objects.filter(pk=earlier.pk, status__isnull=True,
                                                 created_at=earlier.created_at).update(created_at=now))


def _answered(earlier: IdempotentRequest, mine: str) -> JsonResponse:
    if earlier.fingerprint != mine:
        raise ApiError(422, "idempotency_key_reused", f"This {HEADER} was used for a different request in the last "
                       f"{settings.IDEMPOTENCY_KEY_HOURS:g} h; send a new key with a new request.")
    if earlier.status is None:
        raise ApiError(409, "idempotency_request_in_progress", f"The first request with this {HEADER} is still "
                       "being answered; retry in a moment.", retry_after=1)
    is_problem = earlier.status >= 400
    response = JsonResponse(earlier.response, status=earlier.status, safe=False,
                            content_type=PROBLEM_CONTENT_TYPE if is_problem else "application/json")
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent_requests_purge(*, now: datetime.datetime) -> int:
    cutoff = now - datetime.timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    return IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()[0]
