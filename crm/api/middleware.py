"""Answers under /api/ that the framework made before any view ran (405 for a method a path does not take,
404 for a path that is not an endpoint) become problem documents like every other error of the API."""
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from crm.api.errors import problem_response

JSON_TYPES = ("application/json", "application/problem+json")


class ApiProblemMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/api/") or response.status_code < 400 \
                or response.get("Content-Type", "").split(";")[0] in JSON_TYPES:
            return response
        if response.status_code == 405:
            allowed = [m.strip() for m in response.get("Allow", "").split(",") if m.strip()]
            return problem_response(405, "method_not_allowed", f"{request.method} is not allowed here.",
                                    allowed=sorted(allowed))
        if response.status_code == 404:
            return problem_response(404, "not_found", f"There is no API endpoint {request.path}.")
        return problem_response(response.status_code, "error", response.reason_phrase)
