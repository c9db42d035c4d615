"""The web app as the functions server serves it: files, headers, /config.json, and what it refuses.

Served from the same server as the functions (``lib.http.web``), so these run against the session's
functions server over real HTTP. What the browser does with it is in ``tests/e2e``.
"""

from __future__ import annotations

import socket
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from lib.config import Settings, load_settings
from lib.errors import ConfigError
from lib.http.web import WEB_ROOT, WebApp, content_security_policy, public_config, resolve_asset
from lib.services.auth import tokens

HTML_FILES = sorted(p.relative_to(WEB_ROOT).as_posix() for p in WEB_ROOT.rglob("*.html"))


def served_path(relative: str) -> str:
    return "/" if relative == "index.html" else f"/assets/{relative.removeprefix('assets/')}"


class InlineFinder(HTMLParser):
    """Collects everything in a page that a CSP without 'unsafe-inline' would have to allow."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self._in_script = True
            src = dict(attrs).get("src")
            if not src:
                self.problems.append("a <script> without src")
            else:
                self.scripts.append(src)
        if tag == "style":
            self.problems.append("a <style> element")
        if "style" in names:
            self.problems.append(f"a style attribute on <{tag}>")
        self.problems.extend(f"an {name} handler on <{tag}>" for name in names if name.startswith("on"))
        for name, value in attrs:
            if name in ("href", "src") and value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"a javascript: URL on <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("an inline script body")


def raw_get(base_url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalization of ``..`` or ``%2e``)."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_the_app_is_served_at_the_root_with_a_strict_csp_and_security_headers(functions_url: str) -> None:
    response = httpx.get(f"{functions_url}/", timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert directives["connect-src"].split()[0] == "'self'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert '<script type="module" src="/assets/js/main.js"></script>' in response.text


@pytest.mark.parametrize("relative", HTML_FILES)
def test_no_served_html_has_inline_script_or_style(functions_url: str, relative: str) -> None:
    response = httpx.get(f"{functions_url}{served_path(relative)}", timeout=10)
    assert response.status_code == 200
    finder = InlineFinder()

    finder.feed(response.text)

    assert finder.problems == []
    for src in finder.scripts:  # every script is one of ours, from this origin
        assert src.startswith("/assets/")
        assert httpx.get(f"{functions_url}{src}", timeout=10).status_code == 200


def test_no_script_writes_html_from_strings() -> None:
    """The DOM is built with textContent and attributes; nothing parses a string as markup."""
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")
    for path in sorted((WEB_ROOT / "assets").rglob("*.js")):
        text = path.read_text(encoding="utf-8")
        assert [s for s in sinks if s in text] == [], path.name


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/assets/js/main.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ],
)
def test_assets_have_their_content_type_and_revalidate_by_etag(
    functions_url: str, path: str, content_type: str
) -> None:
    first = httpx.get(f"{functions_url}{path}", timeout=10)

    assert first.status_code == 200
    assert first.headers["content-type"] == content_type
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["content-security-policy"]
    again = httpx.get(f"{functions_url}{path}", headers={"If-None-Match": first.headers["etag"]}, timeout=10)
    assert again.status_code == 304
    assert again.content == b""


def test_config_json_names_this_servers_auth_and_functions_and_the_anon_key(
    functions_url: str, settings: Settings
) -> None:
    response = httpx.get(f"{functions_url}/config.json", timeout=10)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["auth_url"] == f"{functions_url}/auth/v1"
    assert body["functions_url"] == f"{functions_url}/functions/v1"
    assert body["hosted"] is False
    assert tokens.verify(body["anon_key"], settings.jwt_secret.reveal())["role"] == "anon"
    assert set(body) == {"auth_url", "functions_url", "anon_key", "hosted"}


async def test_a_hosted_project_is_what_config_json_and_the_csp_name(
    settings: Settings, tmp_path: Path
) -> None:
    env = {
        "AITRADEX_STATE_DIR": str(settings.state_dir),
        "AITRADEX_DB_NAME": settings.database.db_name,
        "SUPABASE_URL": "https://abcdefgh.supabase.co/",
        "SUPABASE_ANON_KEY": "hosted-anon-key",
        "AITRADEX_PUBLIC_FUNCTIONS_URL": "https://api.example.com/functions/v1",
    }
    hosted = load_settings(env)

    config = public_config(hosted)

    assert config.auth_url == "https://abcdefgh.supabase.co/auth/v1"
    assert config.functions_url == "https://api.example.com/functions/v1"
    assert config.anon_key == "hosted-anon-key"
    connect = next(d for d in content_security_policy(config).split("; ") if d.startswith("connect-src"))
    assert connect == "connect-src 'self' https://abcdefgh.supabase.co https://api.example.com"
    assert WebApp(hosted).headers["content-security-policy"] == content_security_policy(config)
    without_key = load_settings({k: v for k, v in env.items() if k != "SUPABASE_ANON_KEY"})
    with pytest.raises(ConfigError, match="SUPABASE_ANON_KEY"):
        public_config(without_key)
    transport = httpx.ASGITransport(app=Starlette(routes=WebApp(without_key).routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://web.test") as client:
        refused = await client.get("/config.json")
        assert (await client.get("/")).status_code == 200
    assert refused.status_code == 503
    assert "SUPABASE_ANON_KEY" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/assets/../lib/config.py",
        "/assets/../../etc/passwd",
        "/assets/../../pyproject.toml",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/assets/..%2f..%2flib%2fconfig.py",
        "/assets/js/../../index.html/../../pyproject.toml",
        "/assets//etc/passwd",
        "/assets/%2fetc%2fpasswd",
        "/assets/..%5c..%5cpyproject.toml",
        "/assets/.hidden",
        "/assets/js/main.js%00.css",
        "/assets/js",
        "/assets/",
    ],
)
def test_paths_that_leave_the_assets_folder_are_refused(functions_url: str, path: str) -> None:
    status, body = raw_get(functions_url, path)

    assert status in (400, 404)
    assert b"root:" not in body
    assert b"REPO_ROOT" not in body
    assert b"[project]" not in body


def test_a_symlink_out_of_the_web_folder_and_unknown_extensions_are_not_served(tmp_path: Path) -> None:
    root = tmp_path / "web"
    root.mkdir()
    (root / "app.js").write_text("export {};")
    (tmp_path / "secret.js").write_text("secret")
    (root / "leak.js").symlink_to(tmp_path / "secret.js")
    (root / "notes.py").write_text("print()")

    assert resolve_asset(root, "app.js") == (root / "app.js").resolve()
    assert resolve_asset(root, "leak.js") is None
    assert resolve_asset(root, "notes.py") is None
    assert resolve_asset(root, "../secret.js") is None
    assert resolve_asset(root, str(tmp_path / "secret.js")) is None


def test_the_web_routes_leave_the_functions_and_health_alone(functions_url: str) -> None:
    assert httpx.get(f"{functions_url}/health", timeout=10).json()["status"] == "ok"
    listed = httpx.get(
        f"{functions_url}/functions/v1/signals-api", params={"action": "list", "limit": 1}, timeout=30
    )
    assert listed.status_code == 200
    assert "signals" in listed.json()
    assert httpx.post(f"{functions_url}/", timeout=10).status_code == 405
