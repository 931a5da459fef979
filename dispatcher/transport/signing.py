"""Standard Webhooks signatures (https://www.standardwebhooks.com): receivers verify id, time and body."""
import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
# The three headers every signed request carries (the OpenAPI document's webhooks list them).
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"


def signature_compute(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the base64-decoded secret as key."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return f"{SIGNATURE_VERSION}," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_verify(*, secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """What a receiver does: any of the space-separated signatures in the header may match."""
    expected = signature_compute(secret=secret, message_id=message_id, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
