"""The envelopes every successful answer of the API comes in, declared once for every router.

``Answer[T]`` is ``{"data": T}`` (one object, or a list that is not paged: ``Answer[list[T]]``);
``Page[T]`` is ``{"data": [T, …], "next_cursor": …}``, what ``crm.api.pagination.page`` returns. Generic
pydantic models on ninja's Schema, so a router names what is inside instead of declaring a class per
resource; the OpenAPI document names each one by its content (``Answer_ChannelOut_``, ``Page_DeliveryOut_``).
"""
from typing import Generic, TypeVar

from ninja import Schema

T = TypeVar("T")


class Answer(Schema, Generic[T]):
    data: T


class Page(Schema, Generic[T]):
    data: list[T]
    next_cursor: str | None
