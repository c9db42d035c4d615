"""The layout rules of DESIGN.md section 1 that import-linter cannot see.

- SQL lives only in ``lib/db`` and ``lib/stores``: no other module of ``lib`` or ``functions`` holds a
  string literal that reads like a statement, or calls ``.execute(``.
- No module in ``lib`` or ``functions`` is over 400 lines unless its docstring says why: it names its own
  length ("over 400 lines", "~460 lines") where it gives the reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lib.config import REPO_ROOT

MAX_LINES = 400
SQL_HOMES = ("lib/db/", "lib/stores/")
# A statement, not prose: a keyword followed by what only SQL puts after it.
_SQL = re.compile(
    r"\b(select\s+[\w*(].*\bfrom\b|insert\s+into\b|update\s+\w+(\.\w+)?\s+set\b|delete\s+from\b"
    r"|on\s+conflict\b|for\s+update\s+skip\s+locked\b)",
    re.IGNORECASE | re.DOTALL,
)


def _modules() -> list[Path]:
    return sorted(p for folder in ("lib", "functions") for p in (REPO_ROOT / folder).rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _string_literals(tree: ast.AST) -> list[str]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def _executes(tree: ast.AST) -> bool:
    return any(
        # conn.execute(query, ...): a statement handed to a connection (a method named execute with no
        # arguments, like the pipeline's step, is not one)
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "execute"
        and bool(node.args)
        for node in ast.walk(tree)
    )


def test_only_db_and_stores_hold_sql() -> None:
    offenders: dict[str, list[str]] = {}
    for path in _modules():
        name = _relative(path)
        if name.startswith(SQL_HOMES):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = [s.strip()[:60] for s in _string_literals(tree) if _SQL.search(s)]
        if _executes(tree):
            found.append(".execute(...) call")
        if found:
            offenders[name] = found
    assert offenders == {}


def test_the_sql_detector_sees_statements_and_ignores_prose() -> None:
    assert _SQL.search("select id from signals where status = 'new'")
    assert _SQL.search("INSERT INTO t (a) VALUES (1)")
    assert _SQL.search("update public.signals set status = 'x'")
    assert not _SQL.search("the user may update their preferences")


def test_no_module_is_over_400_lines_without_saying_why() -> None:
    long_and_silent = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n") + 1
        if lines <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not any(int(n) >= MAX_LINES for n in re.findall(r"(\d{3,}) lines", docstring)):
            long_and_silent.append(f"{_relative(path)}: {lines} lines")
    assert long_and_silent == []
