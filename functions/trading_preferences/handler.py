"""``trading-preferences``: a user reads and updates their own trading preferences."""

from __future__ import annotations

from functions.trading_preferences.models import (
    GetPreferences,
    Preferences,
    PreferencesRequest,
    PreferencesResponse,
    UpdatePreferences,
)
from lib.app.context import Context
from lib.core.preferences import PREFERENCE_FIELDS
from lib.errors import InvalidRequest
from lib.http.spec import FunctionSpec, StatusRequest, status_response
from lib.stores.preferences import PreferencesRecord, get_preferences, update_preferences

NAME = "trading-preferences"


def _to_response(record: PreferencesRecord) -> Preferences:
    values = {name: getattr(record.preferences, name) for name in PREFERENCE_FIELDS}
    return Preferences(user_id=record.user_id, saved=record.saved, updated_at=record.updated_at, **values)


async def handle(
    request: GetPreferences | UpdatePreferences | StatusRequest, ctx: Context
) -> PreferencesResponse:
    """Parse, call lib, map."""
    if isinstance(request, StatusRequest):
        return await status_response(NAME)
    user_id = ctx.require_user_id()
    if isinstance(request, GetPreferences):
        return _to_response(await get_preferences(ctx.db, ctx.caller, user_id))
    changes = request.model_dump(exclude={"action"}, exclude_none=True)
    if not changes:
        raise InvalidRequest("update needs at least one preference to change")
    overlap = set(changes.get("symbol_allowlist", [])) & set(changes.get("symbol_blocklist", []))
    if overlap:
        raise InvalidRequest(
            "a symbol cannot be both allowed and blocked", details={"symbols": sorted(overlap)}
        )
    return _to_response(await update_preferences(ctx.db, ctx.caller, user_id, changes))


SPEC = FunctionSpec(
    name=NAME,
    summary="Read (get) and update the caller's own trading preferences",
    request_type=PreferencesRequest,
    response_type=PreferencesResponse,
    handler=handle,
    access={"get": "user", "update": "user", "status": "anyone"},
    default_access="user",
)
