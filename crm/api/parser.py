"""Request bodies: JSON only, size-capped, and refused with a reason rather than a 500 for what Python's
json module accepts but no database can store (lone surrogates) or cannot read safely (deep nesting,
huge integers)."""
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja.parser import Parser

from crm.api.errors import ApiError


def json_body(request: HttpRequest) -> Any:
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json).")
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.API_MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"The body may have at most {settings.API_MAX_BODY_BYTES} bytes.")
    try:
        data = json.loads(request.body or b"null")
        # Lone surrogates ("\ud800") are valid JSON escapes but not text: no database can store them.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except RequestDataTooBig:
        raise ApiError(413, "too_large", f"The body may have at most {settings.API_MAX_BODY_BYTES} bytes.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {error}.") from None
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", "The body contains text that is not valid Unicode (a lone surrogate "
                                            "escape such as \\ud800).") from None
    except (RecursionError, ValueError) as error:  # nesting too deep; an integer with too many digits
        reason = "it is nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ApiError(400, "invalid_json", f"The body cannot be read as JSON: {reason}.") from None
    return data


class HardenedParser(Parser):
    """django-ninja's body parser, replaced by json_body: the same checks for every operation."""

    def parse_body(self, request: HttpRequest) -> Any:
        return json_body(request)
