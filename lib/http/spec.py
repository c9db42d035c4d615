"""How a function declares itself: its name, request and response models, who may call each action.

A handler module exposes ``SPEC = FunctionSpec(...)``. The request model is a pydantic model, or a
union of models discriminated by ``action``; every function answers ``{"action": "status"}``.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

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

    @property
    def actions(self) -> tuple[str, ...]:
        """Every action the request model accepts, in declaration order."""
        return tuple(_shape(self.request_type).models)

    @property
    def models(self) -> Mapping[str, type[BaseModel]]:
        """The request model of each action."""
        return _shape(self.request_type).models

    @property
    def default_action(self) -> str | None:
        """The action a body without ``action`` means, if the model gives it a default."""
        return _shape(self.request_type).default

    @property
    def tagged(self) -> bool:
        """True when the request type is a union of models: pydantic's error locations then start with
        the action (the tag)."""
        return _shape(self.request_type).tagged

    def known_action(self, value: Any) -> str | None:
        """``value`` if it is one of this function's actions, else None (for logs and messages: a
        submitted value is never repeated unless it is one of ours)."""
        return value if isinstance(value, str) and value in self.models else None

    def access_for(self, action: str | None) -> Access:
        return self.access.get(action or "", self.default_access)

    def authorize(self, ctx: Context, action: str | None) -> None:
        """Raise Forbidden unless the caller's role may run ``action`` (named only if it is known)."""
        needed = self.access_for(action)
        role = ctx.caller.role
        what = f"{self.name} {action}" if self.known_action(action) else self.name
        if needed == "service" and role != "service_role":
            raise Forbidden(f"{what} needs the service role")
        if needed == "user" and role != "authenticated":
            raise Forbidden(f"{what} needs a signed-in user's token")


_ADAPTERS: dict[int, TypeAdapter[Any]] = {}


@dataclass(frozen=True)
class _Shape:
    models: dict[str, type[BaseModel]]
    default: str | None
    tagged: bool


_SHAPES: dict[int, _Shape] = {}


def _members(tp: Any) -> list[Any]:
    """The models a request type is made of: itself, or each member of a (tagged) union."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _members(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [model for arg in get_args(tp) for model in _members(arg)]
    return [tp]


def _shape(tp: Any) -> _Shape:
    key = id(tp)
    if key not in _SHAPES:
        members = _members(tp)
        models: dict[str, type[BaseModel]] = {}
        default: str | None = None
        for model in members:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                continue
            action = model.model_fields.get("action")
            if action is None or get_origin(action.annotation) is not Literal:
                continue
            for name in get_args(action.annotation):
                models.setdefault(str(name), model)
            if isinstance(action.default, str):
                default = action.default
        _SHAPES[key] = _Shape(models=models, default=default, tagged=len(members) > 1)
    return _SHAPES[key]


def _adapter(tp: Any) -> TypeAdapter[Any]:
    key = id(tp)
    if key not in _ADAPTERS:
        _ADAPTERS[key] = TypeAdapter(tp)
    return _ADAPTERS[key]


async def status_response(name: str) -> StatusResponse:
    """The answer every function gives to ``{"action": "status"}``."""
    return StatusResponse(function=name)
