"""How a function declares itself: its name, request and response models, who may call each action.

A handler module exposes ``SPEC = FunctionSpec(...)``. The request model is a pydantic model, or a
union of models discriminated by ``action``; every function answers ``{"action": "status"}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

from lib.app.context import Context
from lib.errors import Forbidden

Access = Literal["anyone", "user", "service"]
Handler = Callable[[Any, Context], Awaitable[BaseModel]]


class Request(BaseModel):
    """Base of every request model: unknown fields are refused, so typos fail loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Response(BaseModel):
    """Base of every response model."""

    model_config = ConfigDict(frozen=True)


class StatusRequest(Request):
    """``{"action": "status"}``: is this function alive?"""

    action: Literal["status"]


class StatusResponse(Response):
    function: str
    status: Literal["ok"] = "ok"
    version: str = "1"


@dataclass(frozen=True)
class FunctionSpec:
    """A function's declaration, read by the adapter, the scheduler, OpenAPI and diagnostics."""

    name: str  # kebab-case, as in the URL
    summary: str
    request_type: Any  # a Request subclass or an Annotated union discriminated by "action"
    response_type: Any
    handler: Handler
    access: Mapping[str, Access] = field(default_factory=dict)  # action -> who; "*" is the default
    default_access: Access = "anyone"
    # GET with query parameters, for read-only functions only: anything else could put secrets in URLs.
    http_get: bool = False

    @property
    def request_adapter(self) -> TypeAdapter[Any]:
        return _adapter(self.request_type)

    @property
    def response_adapter(self) -> TypeAdapter[Any]:
        return _adapter(self.response_type)

    def access_for(self, action: str | None) -> Access:
        return self.access.get(action or "", self.default_access)

    def authorize(self, ctx: Context, action: str | None) -> None:
        """Raise Forbidden unless the caller's role may run ``action``."""
        needed = self.access_for(action)
        role = ctx.caller.role
        if needed == "service" and role != "service_role":
            raise Forbidden(f"{self.name} {action or ''} needs the service role".replace("  ", " "))
        if needed == "user" and role != "authenticated":
            raise Forbidden(f"{self.name} {action or ''} needs a signed-in user's token".replace("  ", " "))


_ADAPTERS: dict[int, TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    key = id(tp)
    if key not in _ADAPTERS:
        _ADAPTERS[key] = TypeAdapter(tp)
    return _ADAPTERS[key]


async def status_response(name: str) -> StatusResponse:
    """The answer every function gives to ``{"action": "status"}``."""
    return StatusResponse(function=name)
