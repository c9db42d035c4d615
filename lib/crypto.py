"""Encryption of users' exchange API keys: AES-256-GCM under versioned master keys (DESIGN.md section 7).

Pure code: no database, no network, no file. The master keys come from ``Settings.master_keys``
(``AITRADEX_MASTER_KEYS``); new ciphertexts always use the newest version, and every older version
stays able to decrypt until :mod:`lib.ops.rotate_keys` has re-encrypted every row under the newest one.

A running process learns of a rotation without a restart: a vault given a ``reload`` (the wiring passes
one that reads the keys from where the settings came from) asks it again when a ciphertext names a
version it does not hold, once, and then decrypts (:meth:`KeyVault.decrypt`). The reload is the only
I/O, and it is the caller's.

Token format (what is stored in ``api_key_encrypted`` / ``api_secret_encrypted``), plain ASCII::

    v<version>:<base64url without padding of (nonce || ciphertext || tag)>

- ``version``: the master key version, a positive decimal integer without leading zeros;
- ``nonce``: 12 random bytes (96 bits, GCM's native size), fresh for every encryption, so encrypting
  the same key twice gives two different tokens. NIST SP 800-38D allows 2**32 encryptions per key with
  random nonces; API keys are encrypted a few times per account, far below that;
- ``ciphertext || tag``: AESGCM's output, the 16-byte authentication tag last.

Associated data (authenticated, not stored): ``b"aitradex:v1:" + <canonical user uuid> + b":" + <field>``.
It binds a ciphertext to its owner and its column, so a token copied into another user's row, or from
the key column to the secret column, fails to decrypt instead of silently handing over someone's key.
The user id is canonicalised (lower-case hyphenated UUID) so a ``uuid.UUID`` from the database and
its string form give the same associated data; the field is a lower-case identifier, so neither part
can contain the ``:`` separator and two different (user, field) pairs never share associated data.

Nothing here logs, and no error message or detail ever carries a plaintext, a token or key material.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lib.errors import ConfigError, DecryptionError

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's native 96-bit nonce: no extra GHASH step, and the random-nonce bound applies
TAG_BYTES = 16
MAX_VERSION = 999_999_999
AAD_PREFIX = b"aitradex:v1:"  # the "v1" versions the associated-data layout, not the master key

# The fields the application encrypts: pass these as ``field=`` so the writer and reader always agree.
API_KEY_FIELD = "api_key"
API_SECRET_FIELD = "api_secret"  # noqa: S105 (a field name, not a secret)

_TOKEN_RE = re.compile(r"v([1-9][0-9]{0,8}):([A-Za-z0-9_-]+)")
_FIELD_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    """Strict base64url without padding; None unless ``text`` is the canonical encoding of its bytes.

    Canonical only, because the last character of unpadded base64 has spare bits: without this check
    two different tokens would decrypt to the same thing, and "any change to a token fails" would be
    false.
    """
    if len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64url_encode(raw) == text else None


def _associated_data(user_id: str | uuid.UUID, field: str) -> bytes:
    """The bytes that bind a ciphertext to its user and column. Raises ValueError on a bad input."""
    canonical_user = str(user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(user_id))
    if not _FIELD_RE.fullmatch(field):
        raise ValueError("field must be a lower-case identifier such as 'api_key'")
    return AAD_PREFIX + canonical_user.encode("ascii") + b":" + field.encode("ascii")


def _parse(token: str) -> tuple[int, bytes] | None:
    """(version, nonce || ciphertext || tag) of a well-formed token, else None."""
    match = _TOKEN_RE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        return None
    payload = _b64url_decode(match.group(2))
    if payload is None or len(payload) < NONCE_BYTES + TAG_BYTES:
        return None
    return int(match.group(1)), payload


def version_of(token: str) -> int:
    """The master key version a token was encrypted with. Raises DecryptionError if it is malformed."""
    parsed = _parse(token)
    if parsed is None:
        raise DecryptionError("the encrypted value is malformed", details={"reason": "malformed"})
    return parsed[0]


def key_hint(plaintext: str) -> str:
    """The last 4 characters (fewer if shorter), shown to users to tell their keys apart.

    Meant for the API *key* (``user_trading_accounts.key_hint``), never for the API secret.
    """
    return plaintext[-4:]


def generate_master_key() -> str:
    """A new master key: base64 (standard alphabet, as ``AITRADEX_MASTER_KEYS`` uses) of 32 random bytes."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def _check_keys(master_keys: Mapping[int, bytes]) -> None:
    if not master_keys:
        raise ConfigError("at least one master key is required")
    for version, key in master_keys.items():
        # bool is an int subclass; a version True would be a bug, not version 1.
        # The upper bound keeps every version printable in a token (9 digits) and storable in the
        # integer column key_version.
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
            raise ConfigError(f"master key versions must be positive integers up to {MAX_VERSION}")
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ConfigError(f"master key version {version} must be exactly {KEY_BYTES} bytes (AES-256)")


def format_master_keys(master_keys: Mapping[int, bytes]) -> str:
    """``{1: key, 2: key}`` as ``"1:<base64>,2:<base64>"``, the format of ``AITRADEX_MASTER_KEYS``.

    The inverse of :func:`lib.config.parse_master_keys`. The result is a secret: never log it.
    """
    _check_keys(master_keys)
    return ",".join(
        f"{version}:{base64.b64encode(master_keys[version]).decode('ascii')}"
        for version in sorted(master_keys)
    )


#: ``reload()``: the master keys as configured now (``AITRADEX_MASTER_KEYS``, or the local secrets file).
KeySource = Callable[[], Mapping[int, bytes]]
#: A version still missing after a reload is not asked for again sooner than this: a row on a key that is
#: really gone must not turn every decryption into a read of the configuration.
RELOAD_INTERVAL_S = 1.0


class KeyVault:
    """Encrypts and decrypts API keys with the configured master keys.

    Construct it from ``Settings.master_keys``; it validates them (at least one, each 32 bytes, positive
    versions) and does no I/O. It never shows a key in its ``repr``. With ``reload``, a ciphertext of a
    version it does not hold makes it read the keys again (see the module docstring); a source that
    fails or answers nonsense leaves the keys as they were.
    """

    __slots__ = ("_ciphers", "_current", "_lock", "_reload", "_reloaded_at")

    def __init__(self, master_keys: Mapping[int, bytes], *, reload: KeySource | None = None) -> None:
        self._ciphers: Mapping[int, AESGCM] = MappingProxyType({})
        self._current = 0
        self._install(master_keys)
        self._reload = reload
        self._lock = threading.Lock()
        self._reloaded_at = -RELOAD_INTERVAL_S

    def _install(self, master_keys: Mapping[int, bytes]) -> None:
        _check_keys(master_keys)
        # One AESGCM per version, built once: the key schedule is then not redone for every call. The
        # mapping is replaced whole, so a reader never sees half of a reload.
        self._ciphers = MappingProxyType({version: AESGCM(key) for version, key in master_keys.items()})
        self._current = max(master_keys)

    def reload(self, *, wanted: int | None = None) -> bool:
        """Read the master keys from the source again; whether the vault now holds ``wanted`` (or, without
        it, whether the keys were read). Without a source, or within :data:`RELOAD_INTERVAL_S` of the
        previous reload, nothing is read. Thread-safe: concurrent misses share one reload.
        """
        if self._reload is None:
            return False
        with self._lock:
            if wanted is not None and wanted in self._ciphers:
                return True  # another caller's reload brought it while this one waited
            now = time.monotonic()
            if now - self._reloaded_at < RELOAD_INTERVAL_S:
                return False
            self._reloaded_at = now
            try:
                self._install(self._reload())
            except (ConfigError, ValueError, OSError):
                return False  # the keys in use stay; the caller reports the miss as it is
            return wanted is None or wanted in self._ciphers

    def __repr__(self) -> str:
        return f"KeyVault(versions={sorted(self._ciphers)}, current={self._current})"

    @property
    def current_version(self) -> int:
        """The newest master key version: every new ciphertext uses it."""
        return self._current

    @property
    def versions(self) -> frozenset[int]:
        """Every version this vault can decrypt."""
        return frozenset(self._ciphers)

    def encrypt(self, plaintext: str, *, user_id: str | uuid.UUID, field: str) -> str:
        """Encrypt ``plaintext`` for ``user_id``'s ``field`` with the newest key and a fresh nonce.

        Raises ValueError if ``user_id`` is not a UUID or ``field`` not a lower-case identifier
        (a programming error, never user input).
        """
        aad = _associated_data(user_id, field)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, plaintext.encode("utf-8"), aad)
        return f"v{self._current}:{_b64url_encode(nonce + sealed)}"

    def decrypt(self, token: str, *, user_id: str | uuid.UUID, field: str) -> str:
        """The plaintext of ``token``, which must have been encrypted for this ``user_id`` and ``field``.

        Every failure raises :class:`DecryptionError`: a malformed token, a key version this vault does
        not hold, a changed byte, or a token made for another user or field (GCM cannot tell these last
        ones apart, by design). A version it does not hold is first looked for in the source (:meth:`reload`).
        """
        details: dict[str, object] = {"field": field if _FIELD_RE.fullmatch(field) else None}
        try:
            aad = _associated_data(user_id, field)
        except ValueError:
            raise DecryptionError(
                "the user id or field is not valid", details={**details, "reason": "bad_associated_data"}
            ) from None
        parsed = _parse(token)
        if parsed is None:
            raise DecryptionError(
                "the encrypted value is malformed", details={**details, "reason": "malformed"}
            )
        version, payload = parsed
        details["key_version"] = version
        cipher = self._ciphers.get(version)
        if cipher is None and self.reload(wanted=version):
            cipher = self._ciphers.get(version)  # rotated since this process started
        if cipher is None:
            raise DecryptionError(
                f"master key version {version} is not configured (AITRADEX_MASTER_KEYS)",
                details={**details, "reason": "unknown_key_version"},
            )
        try:
            raw = cipher.decrypt(payload[:NONCE_BYTES], payload[NONCE_BYTES:], aad)
            return raw.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            # `from None`: the library's exception adds nothing and must not tempt anyone to log more.
            raise DecryptionError(
                "the encrypted value failed authentication (tampered, or made for another user or field)",
                details={**details, "reason": "authentication_failed"},
            ) from None

    def needs_rotation(self, token: str) -> bool:
        """Whether ``token`` uses an older key than the newest. Raises DecryptionError if malformed."""
        return version_of(token) < self._current
