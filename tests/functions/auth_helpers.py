"""Settings for the auth servers the tests start."""

from __future__ import annotations

import dataclasses
import ipaddress

from lib.config import Settings


def auth_settings(settings: Settings, **limits: int) -> Settings:
    """The test settings, trusting 127.0.0.1's X-Forwarded-For, with ``limits`` for the auth server."""
    return dataclasses.replace(
        settings,
        http=dataclasses.replace(settings.http, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),)),
        auth=dataclasses.replace(settings.auth, **limits),
    )
