"""The web app, served by the functions server at ``API_URL/``: its static files and ``/config.json``.

- ``GET /`` is ``web/index.html``; ``GET /assets/<path>`` a file under ``web/assets/``. Only files with
  a known extension are served, each with its content type; a path that leaves the folder (``..``, an
  absolute path, a symlink pointing out, a dot-file) is a 404, as is anything that is not there. The
  app has no build step and its file names carry no content hash, so every answer is ``no-cache``
  with a strong ``ETag``: a browser revalidates and gets a 304 while the file is unchanged.
- ``GET /config.json`` tells the app where to sign users in and where the functions are, with the anon
  key: the hosted project's (``SUPABASE_URL``, ``SUPABASE_ANON_KEY``) or, on a local stack, this
  server's own ``/auth/v1`` and ``/functions/v1`` and the local anon key (``aitradex status``'s).
  A hosted project without ``SUPABASE_ANON_KEY`` gets a 503 naming the variable (the functions go on).
- Every answer carries a strict Content-Security-Policy (scripts and styles only from this origin, no
  inline script or style, ``connect-src`` only to this origin and the configured URLs, no framing),
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.

Only these paths are routed, so ``/health``, ``/functions/v1/*`` and ``/auth/v1/*`` keep their own.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lib.config import REPO_ROOT, Settings
from lib.errors import ConfigError, Unauthorized
from lib.local_state import read_local_secret
from lib.log import log_event
from lib.services.auth import tokens

WEB_ROOT = REPO_ROOT / "web"
logger = logging.getLogger("aitradex.web")
CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class PublicConfig:
    """What ``/config.json`` answers; ``None`` URLs mean "this server's own", resolved per request."""

    auth_url: str | None
    functions_url: str | None
    anon_key: str
    hosted: bool


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def local_anon_key(settings: Settings) -> str:
    """The anon key ``aitradex status`` prints (kept in the state folder), or a fresh one if none verifies."""
    secret = settings.jwt_secret.reveal()
    stored = read_local_secret(settings.state_dir, "ANON_KEY")
    if stored is not None:
        try:
            if tokens.verify(stored, secret).get("role") == "anon":
                return stored
        except Unauthorized:
            pass  # minted with another secret: a fresh one below verifies with this server's
    return tokens.mint_api_key("anon", secret)


def public_config(settings: Settings) -> PublicConfig:
    """The web app's configuration from the settings: a hosted project's URLs, or this server's own.

    Raises ConfigError for a hosted project (``SUPABASE_URL``) without ``SUPABASE_ANON_KEY``: the app
    could not call its auth server.
    """
    web = settings.web
    if settings.auth.supabase_url is not None:
        if web.anon_key is None:
            raise ConfigError(
                "SUPABASE_ANON_KEY is not set: the web app needs the hosted project's (SUPABASE_URL) anon key"
            )
        return PublicConfig(
            auth_url=f"{settings.auth.supabase_url}/auth/v1",
            functions_url=web.functions_url,
            anon_key=web.anon_key.reveal(),
            hosted=True,
        )
    return PublicConfig(
        auth_url=None, functions_url=web.functions_url, anon_key=local_anon_key(settings), hosted=False
    )


def content_security_policy(config: PublicConfig) -> str:
    """The page's CSP: nothing inline, nothing from another host but the configured API origins."""
    connect = ["'self'"]
    for url in (config.auth_url, config.functions_url):
        if url is not None and _origin(url) not in connect:
            connect.append(_origin(url))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def resolve_asset(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``root``, or None when it is not one to serve.

    Refused: empty, absolute or backslashed paths, NUL, any ``.``-prefixed part (``..``, dot-files),
    an unknown extension, and anything whose real path (symlinks followed) is outside ``root``.
    """
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return None
    parts = relative.split("/")
    if any(not part or part.startswith(".") for part in parts):
        return None
    base = root.resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    if candidate.suffix not in CONTENT_TYPES:
        return None
    return candidate


class WebApp:
    """The routes of the web app, with the headers every answer carries."""

    def __init__(self, settings: Settings, root: Path = WEB_ROOT) -> None:
        self.root = root
        # A configuration the app cannot work with (a hosted project without its anon key) does not
        # stop the functions: /config.json answers 503 with the reason, and the start-up log says it.
        self.config: PublicConfig | None = None
        self.problem: ConfigError | None = None
        try:
            self.config = public_config(settings)
        except ConfigError as exc:
            self.problem = exc
            log_event(logger, "web_app_unconfigured", level=logging.ERROR, reason=exc.message)
        self.headers = {
            "content-security-policy": content_security_policy(
                self.config or PublicConfig(auth_url=None, functions_url=None, anon_key="", hosted=False)
            ),
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "x-frame-options": "DENY",
            "cross-origin-opener-policy": "same-origin",
            "permissions-policy": "camera=(), microphone=(), geolocation=()",
        }

    def _file(self, request: Request, path: Path | None) -> Response:
        if path is None:
            return self._not_found()
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {**self.headers, "cache-control": "no-cache", "etag": etag}
        if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=CONTENT_TYPES[path.suffix], headers=headers)

    def _not_found(self) -> Response:
        return JSONResponse(
            {"error": {"code": "not_found", "message": "no such file", "details": {}}},
            status_code=404,
            headers={**self.headers, "cache-control": "no-store"},
        )

    async def index(self, request: Request) -> Response:
        return self._file(request, resolve_asset(self.root, "index.html"))

    async def asset(self, request: Request) -> Response:
        return self._file(request, resolve_asset(self.root / "assets", str(request.path_params["path"])))

    async def config_json(self, request: Request) -> Response:
        if self.config is None:
            assert self.problem is not None
            return JSONResponse(
                self.problem.to_dict(), status_code=503, headers={**self.headers, "cache-control": "no-store"}
            )
        # A local stack's URLs are this server's, as the browser reached it.
        own = str(request.base_url).rstrip("/")
        body = {
            "auth_url": self.config.auth_url or f"{own}/auth/v1",
            "functions_url": self.config.functions_url or f"{own}/functions/v1",
            "anon_key": self.config.anon_key,
            "hosted": self.config.hosted,
        }
        return JSONResponse(body, headers={**self.headers, "cache-control": "no-store"})

    def routes(self) -> list[BaseRoute]:
        """``/``, ``/index.html``, ``/config.json`` and ``/assets/<path>`` (GET and HEAD)."""
        methods = ["GET", "HEAD"]
        return [
            Route("/", self.index, methods=methods),
            Route("/index.html", self.index, methods=methods),
            Route("/config.json", self.config_json, methods=methods),
            Route("/assets/{path:path}", self.asset, methods=methods),
        ]
