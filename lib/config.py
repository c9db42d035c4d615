"""Configuration: one frozen, validated object, loaded once at startup.

Sources, in order: the process environment, then (for a local stack only) the generated secrets file
``<state_dir>/secrets.json``. Nothing here generates a secret: :func:`lib.local_state.ensure_local_secrets`
does that, explicitly, when a local stack is built. A missing secret raises :class:`ConfigError`; no
secret ever defaults to an empty string.

The module is about 450 lines: every environment variable the system reads has its one reader and
its one validation here, so a setting has exactly one home; splitting it per area would scatter the
precedence rules (environment first, then the secrets file) across modules.

Environment variables:

``DATABASE_URL`` / ``SUPABASE_DB_URL``
    An external Postgres 15+ (hosted Supabase or any server), as its owner. Used only by operations
    (migrations, rebuild). Without it, the embedded server in ``<state_dir>/pgdata`` is used.
``AITRADEX_APP_DB_URL``
    The application's connection (as ``authenticator``) to an external database. Without it, it is
    derived from ``DATABASE_URL`` with the user ``authenticator`` and ``AITRADEX_AUTHENTICATOR_PASSWORD``.
``JWT_SECRET``, ``AITRADEX_MASTER_KEYS`` (``"1:<base64 32 bytes>,2:<...>"``),
``AITRADEX_AUTHENTICATOR_PASSWORD``
    Secrets; locally they come from the generated secrets file.
``AITRADEX_STATE_DIR`` (default ``<repo>/.aitradex``), ``AITRADEX_DB_NAME`` (default ``aitradex``).
``AITRADEX_TRUSTED_PROXIES``
    Comma-separated IP addresses or CIDR networks of the reverse proxies in front of the functions
    server (default: none). Only from these peers is ``X-Forwarded-For`` believed; from anyone else,
    the audit trail records the peer's own address.
``AITRADEX_HTTP_READ_TIMEOUT_S``
    Seconds a request's headers and body have, from its first byte (or from the connection's
    opening), to arrive in full before the server closes the connection (default 10, at most 300).
``SUPABASE_URL``
    A hosted Supabase project: its ``/auth/v1`` signs users in, the local one is not served, and user
    tokens verify through ``$SUPABASE_URL/auth/v1/.well-known/jwks.json``.
``AUTH_JWT_SIGNING_KEY``
    The local auth server's ES256 private key (PEM); locally from the generated secrets file.
``AITRADEX_AUTH_*``
    Limits of the local auth server (:class:`AuthConfig`): ``RATE_LIMIT_IP`` and ``RATE_LIMIT_EMAIL``
    (sign-ins and sign-ups per window, default 30 and 10), ``RATE_WINDOW_S`` (default 300),
    ``MIN_PASSWORD_LENGTH`` (default 8), ``ACCESS_TOKEN_TTL_S`` (default 3600),
    ``REFRESH_TOKEN_REUSE_INTERVAL_S`` (default 10), ``JWKS_MIN_REFRESH_S`` (default 30).
``SUPABASE_ANON_KEY``, ``AITRADEX_PUBLIC_FUNCTIONS_URL``
    What the web app's ``/config.json`` tells browsers besides the auth URL: a hosted project's anon
    key (required with ``SUPABASE_URL``), and where the functions are reached (default: the functions
    server the browser loaded the app from).
``AITRADEX_BACKUP_DIR``, ``AITRADEX_BACKUP_KEEP``, ``AITRADEX_BACKUP_INTERVAL_HOURS``
    The embedded database's backups (:class:`BackupConfig`): where the WAL archive and the base backups
    live (default ``<state_dir>-backups``, beside the state folder, so neither a lost data folder nor
    ``clean-state`` takes them), how many base backups are kept (default 7), and how often the stack's
    scheduler takes one (default 24 hours; 0 turns the schedule off). They are machine settings, not
    ``app_settings`` rows: they must be known when the database is gone.
``AITRADEX_WAL_ARCHIVE``
    ``on`` (default) or ``off``: whether the embedded server archives its WAL into the backup folder.
    ``off`` is for throwaway servers (the test suite's), whose WAL would only pile up.
``AITRADEX_DB_PREPARED_STATEMENTS``
    ``on`` (default) or ``off``: whether the application's connections let psycopg prepare statements
    it runs often (``prepare_threshold``). ``off`` is required behind a transaction-mode pooler (Supabase's
    Supavisor on port 6543, PgBouncer in transaction mode), where a statement prepared in one
    transaction's server connection does not exist in the next one's.
``AITRADEX_DB_POOL_SIZE``
    The most connections one process's application pool opens (default 10, 1 to 200). A host's total is
    this times its processes (functions workers, executor, scanner); see the README's hosted notes.
``AITRADEX_SOURCE_ADDRESS``
    The local IP address this host's exchange calls (market data and signed trading calls alike) are
    sent from (default: the operating system's choice). Bybit budgets requests per source IP, so a
    host is a process group with its own address (:class:`ExchangeConfig`).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from lib.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".aitradex"
SECRETS_FILE = "secrets.json"
MIN_JWT_SECRET_LEN = 32
DEFAULT_HTTP_READ_TIMEOUT_S = 10.0
MAX_HTTP_READ_TIMEOUT_S = 300.0
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_BACKUP_KEEP = 7
DEFAULT_BACKUP_INTERVAL_HOURS = 24.0


class Secret:
    """A string that never shows itself in ``repr``/``str``, so it cannot leak into logs by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ConfigError("a secret may not be empty")
        self._value = value

    def reveal(self) -> str:
        """The plain value. Call it only where the secret is used, never to log or return it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


DEFAULT_DB_POOL_SIZE = 10
MAX_DB_POOL_SIZE = 200


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Where the database is and how each kind of caller reaches it."""

    embedded: bool
    db_name: str
    # The owner's connection for migrations and rebuilds; None for the embedded server until it runs.
    external_admin_url: Secret | None
    external_app_url: Secret | None
    authenticator_password: Secret
    # The embedded server's superuser; None when an external database is used.
    embedded_superuser_password: Secret | None
    # False behind a transaction-mode pooler: psycopg then never prepares (prepare_threshold=None).
    prepared_statements: bool = True
    # The most connections one process's application pool opens.
    pool_size: int = DEFAULT_DB_POOL_SIZE


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """How the functions server treats its connections."""

    # Peers whose X-Forwarded-For is believed (empty: nobody's).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Time a request has to arrive in full (headers and body), from its first byte.
    read_timeout_s: float = DEFAULT_HTTP_READ_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Supabase Auth: the hosted project (if any), the local auth server's key and its limits."""

    # A hosted project's URL: its /auth/v1 is the one, and user tokens verify through its JWKS.
    supabase_url: str | None = None
    # The local auth server's ES256 private key (PEM); None when hosted or not generated yet.
    signing_key: Secret | None = None
    # GoTrue's hosted default is 30 sign-ins and sign-ups per 5 minutes per IP address.
    rate_limit_ip: int = 30
    rate_limit_email: int = 10
    rate_window_s: int = 300
    # GoTrue's default is 6; 8 is NIST SP 800-63B's minimum for a chosen password.
    min_password_length: int = 8
    # GoTrue's JWT_EXP default.
    access_token_ttl_s: int = 3600
    # Supabase's default REFRESH_TOKEN_REUSE_INTERVAL: a revoked token still swaps for 10 s (two tabs).
    refresh_token_reuse_interval_s: int = 10
    # An unknown `kid` refetches the JWKS at most this often, so a flood of made-up kids cannot hammer it.
    jwks_min_refresh_s: float = 30.0

    @property
    def hosted(self) -> bool:
        """Whether a hosted Supabase project serves /auth/v1."""
        return self.supabase_url is not None


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What the web app is told besides the auth URL (``/config.json``); None on a local stack."""

    # A hosted project's anon key (the functions server needs it with SUPABASE_URL); locally the stack's.
    anon_key: Secret | None = None
    functions_url: str | None = None


@dataclass(frozen=True, slots=True)
class BackupConfig:
    """Where the embedded database's backups live, how many are kept, and how often one is taken."""

    dir: Path
    keep: int = DEFAULT_BACKUP_KEEP
    # 0: the scheduler takes none (``aitradex backup`` still does).
    interval_hours: float = DEFAULT_BACKUP_INTERVAL_HOURS
    # False (AITRADEX_WAL_ARCHIVE=off): the embedded server archives no WAL, so no point-in-time
    # restore is possible. Only for throwaway servers such as the test suite's, whose WAL nobody needs.
    archive_wal: bool = True


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """How this host reaches the exchange."""

    # The local address every exchange connection binds to (None: the OS picks). Bybit's 600 requests
    # per 5 s are per source IP: hosts with distinct addresses have distinct budgets.
    source_address: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the application needs from its environment, validated."""

    state_dir: Path
    database: DatabaseConfig
    jwt_secret: Secret
    master_keys: Mapping[int, bytes]
    http: HttpConfig = field(default_factory=HttpConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    web: WebConfig = field(default_factory=WebConfig)
    backup: BackupConfig | None = None
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)

    @property
    def backups(self) -> BackupConfig:
        """The backup settings (derived from the state folder when none were given)."""
        return self.backup or BackupConfig(dir=default_backup_dir(self.state_dir))

    @property
    def current_key_version(self) -> int:
        """The newest master key version: new ciphertexts use it."""
        return max(self.master_keys)


def _read_secrets_file(state_dir: Path) -> dict[str, str]:
    path = state_dir / SECRETS_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path} must be a JSON object of strings")
    return data


def parse_master_keys(raw: str) -> dict[int, bytes]:
    """Parse ``"1:<base64>,2:<base64>"`` into {version: 32-byte key}. Raises ConfigError on any defect."""
    keys: dict[int, bytes] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        version_text, sep, encoded = part.partition(":")
        if not sep or not version_text.isdigit():
            raise ConfigError("AITRADEX_MASTER_KEYS entries must look like '<version>:<base64 key>'")
        version = int(version_text)
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ConfigError(f"AITRADEX_MASTER_KEYS version {version} is not valid base64") from None
        if len(key) != 32:
            raise ConfigError(f"AITRADEX_MASTER_KEYS version {version} must decode to 32 bytes (AES-256)")
        if version in keys:
            raise ConfigError(f"AITRADEX_MASTER_KEYS lists version {version} twice")
        keys[version] = key
    if not keys:
        raise ConfigError("AITRADEX_MASTER_KEYS has no key")
    return keys


def parse_trusted_proxies(raw: str) -> tuple[IPNetwork, ...]:
    """Parse ``"10.0.0.5, 172.16.0.0/12, ::1"`` into networks. Raises ConfigError on any defect."""
    networks: list[IPNetwork] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=True))
        except ValueError:
            # Host bits set ("10.0.0.1/8") is refused too: trusting a wider range than meant is worse
            # than failing at startup.
            raise ConfigError(
                f"AITRADEX_TRUSTED_PROXIES entry {part!r} is not an IP address or a network like 10.0.0.0/8"
            ) from None
    return tuple(networks)


def parse_read_timeout(raw: str) -> float:
    """Parse ``AITRADEX_HTTP_READ_TIMEOUT_S``: seconds, above 0 and at most 300."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError("AITRADEX_HTTP_READ_TIMEOUT_S must be a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_HTTP_READ_TIMEOUT_S:
        raise ConfigError(
            f"AITRADEX_HTTP_READ_TIMEOUT_S must be above 0 and at most {MAX_HTTP_READ_TIMEOUT_S:.0f} seconds"
        )
    return value


def _http_config(env: Mapping[str, str]) -> HttpConfig:
    timeout = env.get("AITRADEX_HTTP_READ_TIMEOUT_S", "").strip()
    return HttpConfig(
        trusted_proxies=parse_trusted_proxies(env.get("AITRADEX_TRUSTED_PROXIES", "")),
        read_timeout_s=parse_read_timeout(timeout) if timeout else DEFAULT_HTTP_READ_TIMEOUT_S,
    )


_AUTH_LIMITS = {
    "rate_limit_ip": ("AITRADEX_AUTH_RATE_LIMIT_IP", 1, 1_000_000),
    "rate_limit_email": ("AITRADEX_AUTH_RATE_LIMIT_EMAIL", 1, 1_000_000),
    "rate_window_s": ("AITRADEX_AUTH_RATE_WINDOW_S", 1, 86_400),
    "min_password_length": ("AITRADEX_AUTH_MIN_PASSWORD_LENGTH", 6, 72),  # bcrypt reads 72 bytes
    "access_token_ttl_s": ("AITRADEX_AUTH_ACCESS_TOKEN_TTL_S", 30, 7 * 86_400),
    "refresh_token_reuse_interval_s": ("AITRADEX_AUTH_REFRESH_TOKEN_REUSE_INTERVAL_S", 0, 3600),
    "jwks_min_refresh_s": ("AITRADEX_AUTH_JWKS_MIN_REFRESH_S", 0, 3600),
}


def _auth_config(env: Mapping[str, str], local: Mapping[str, str]) -> AuthConfig:
    values: dict[str, int] = {}
    for attr, (name, low, high) in _AUTH_LIMITS.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ConfigError(f"{name} must be a whole number from {low} to {high}")
        values[attr] = int(raw)
    url = env.get("SUPABASE_URL", "").strip().rstrip("/") or None
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError("SUPABASE_URL must be the project's http(s) URL, like https://<ref>.supabase.co")
    key = env.get("AUTH_JWT_SIGNING_KEY") or local.get("AUTH_JWT_SIGNING_KEY")
    return AuthConfig(
        supabase_url=url,
        signing_key=Secret(key) if key and url is None else None,
        **values,
    )


def _public_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an http(s) URL without a query, like https://api.example.com")
    return raw.rstrip("/")


def _web_config(env: Mapping[str, str]) -> WebConfig:
    hosted = bool(env.get("SUPABASE_URL", "").strip())
    anon_key = env.get("SUPABASE_ANON_KEY", "").strip()
    functions_url = env.get("AITRADEX_PUBLIC_FUNCTIONS_URL", "").strip()
    # A hosted project without its anon key is refused when the web app is served (lib.http.web),
    # not here: operator commands against a hosted project need no anon key.
    return WebConfig(
        anon_key=Secret(anon_key) if hosted and anon_key else None,
        functions_url=_public_url("AITRADEX_PUBLIC_FUNCTIONS_URL", functions_url) if functions_url else None,
    )


def default_backup_dir(state_dir: Path) -> Path:
    """``<state_dir>-backups``: beside the state folder, outside the data folder and the state folder."""
    return state_dir.with_name(f"{state_dir.name}-backups")


def backup_config(env: Mapping[str, str], state_dir: Path) -> BackupConfig:
    """``AITRADEX_BACKUP_DIR`` / ``_KEEP`` / ``_INTERVAL_HOURS``, validated (ConfigError)."""
    raw_dir = env.get("AITRADEX_BACKUP_DIR", "").strip()
    keep_text = env.get("AITRADEX_BACKUP_KEEP", "").strip() or str(DEFAULT_BACKUP_KEEP)
    interval_text = env.get("AITRADEX_BACKUP_INTERVAL_HOURS", "").strip() or str(
        DEFAULT_BACKUP_INTERVAL_HOURS
    )
    if not keep_text.isdigit() or not 1 <= int(keep_text) <= 1000:
        raise ConfigError("AITRADEX_BACKUP_KEEP must be a whole number of base backups from 1 to 1000")
    try:
        interval = float(interval_text)
    except ValueError:
        interval = -1.0
    if not math.isfinite(interval) or not 0 <= interval <= 24 * 365:
        raise ConfigError("AITRADEX_BACKUP_INTERVAL_HOURS must be hours from 0 (off) to 8760")
    folder = Path(raw_dir).resolve() if raw_dir else default_backup_dir(state_dir)
    archive_text = env.get("AITRADEX_WAL_ARCHIVE", "").strip().lower() or "on"
    if archive_text not in ("on", "off"):
        raise ConfigError("AITRADEX_WAL_ARCHIVE must be on or off")
    return BackupConfig(
        dir=folder, keep=int(keep_text), interval_hours=interval, archive_wal=archive_text == "on"
    )


def exchange_config(env: Mapping[str, str]) -> ExchangeConfig:
    """``AITRADEX_SOURCE_ADDRESS``, validated: an IP address (ConfigError otherwise)."""
    raw = env.get("AITRADEX_SOURCE_ADDRESS", "").strip()
    if not raw:
        return ExchangeConfig()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise ConfigError(f"AITRADEX_SOURCE_ADDRESS {raw!r} is not an IP address") from None
    return ExchangeConfig(source_address=str(address))


def _required(name: str, env: Mapping[str, str], local: Mapping[str, str], hint: str) -> Secret:
    value = env.get(name) or local.get(name)
    if not value:
        raise ConfigError(f"{name} is not set. {hint}")
    return Secret(value)


def app_url_from_admin(admin_url: str, password: str) -> str:
    """The admin URL with its user and password swapped for ``authenticator``'s."""
    parts = urlsplit(admin_url)
    host = parts.hostname or "localhost"
    netloc = f"authenticator:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings from ``env`` (default: ``os.environ``) and local secrets."""
    env = os.environ if env is None else env
    state_dir = Path(env.get("AITRADEX_STATE_DIR") or DEFAULT_STATE_DIR).resolve()
    local = _read_secrets_file(state_dir)
    hint = "Set it in the environment, or run `make demo` once to generate local secrets."

    jwt_secret = _required("JWT_SECRET", env, local, hint)
    if len(jwt_secret.reveal()) < MIN_JWT_SECRET_LEN:
        raise ConfigError(f"JWT_SECRET must be at least {MIN_JWT_SECRET_LEN} characters")
    master_keys = parse_master_keys(_required("AITRADEX_MASTER_KEYS", env, local, hint).reveal())
    authenticator_password = _required("AITRADEX_AUTHENTICATOR_PASSWORD", env, local, hint)

    admin_url = env.get("DATABASE_URL") or env.get("SUPABASE_DB_URL")
    app_url = env.get("AITRADEX_APP_DB_URL")
    if app_url and not admin_url:
        raise ConfigError("AITRADEX_APP_DB_URL is set without DATABASE_URL")
    if admin_url and not app_url:
        app_url = app_url_from_admin(admin_url, authenticator_password.reveal())
    db_name = env.get("AITRADEX_DB_NAME") or "aitradex"
    superuser_password = None
    if admin_url is None:
        superuser_password = _required("POSTGRES_SUPERUSER_PASSWORD", env, local, hint)
    prepared_text = env.get("AITRADEX_DB_PREPARED_STATEMENTS", "").strip().lower() or "on"
    if prepared_text not in ("on", "off"):
        raise ConfigError("AITRADEX_DB_PREPARED_STATEMENTS must be on or off")
    pool_text = env.get("AITRADEX_DB_POOL_SIZE", "").strip() or str(DEFAULT_DB_POOL_SIZE)
    if not pool_text.isdigit() or not 1 <= int(pool_text) <= MAX_DB_POOL_SIZE:
        raise ConfigError(
            f"AITRADEX_DB_POOL_SIZE must be a whole number of connections from 1 to {MAX_DB_POOL_SIZE}"
        )
    if not db_name.replace("_", "").isalnum():
        raise ConfigError("AITRADEX_DB_NAME may contain only letters, digits and underscores")

    return Settings(
        state_dir=state_dir,
        database=DatabaseConfig(
            embedded=admin_url is None,
            db_name=db_name,
            external_admin_url=Secret(admin_url) if admin_url else None,
            external_app_url=Secret(app_url) if app_url else None,
            authenticator_password=authenticator_password,
            embedded_superuser_password=superuser_password,
            prepared_statements=prepared_text == "on",
            pool_size=int(pool_text),
        ),
        jwt_secret=jwt_secret,
        master_keys=master_keys,
        http=_http_config(env),
        auth=_auth_config(env, local),
        web=_web_config(env),
        backup=backup_config(env, state_dir),
        exchange=exchange_config(env),
    )
