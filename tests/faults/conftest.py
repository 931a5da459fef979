"""The fault suite shares the end-to-end fixtures: real worker processes on Redis and PostgreSQL."""
from tests.e2e.conftest import stack, start_worker  # noqa: F401 (fixtures; stack: Redis, unparametrized here)
