"""The versioned evidence of every score (``data/evidence.json``), read once per process.

signals-api and diagnostics show it beside the signals, so a user sees whether a score showed an edge
after fees before trusting it. A missing file means no report has been made: an empty mapping.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from lib.config import REPO_ROOT
from lib.core.evidence import ScoreEvidence
from lib.errors import ConfigError

EVIDENCE_FILE = REPO_ROOT / "data" / "evidence.json"


def read_evidence(path: Path) -> dict[str, list[ScoreEvidence]]:
    """Every report in ``path`` by algorithm (timeframes in file order); {} when there is no file."""
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        records = [ScoreEvidence(**entry) for entry in entries]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a list of evidence entries: {exc}") from None
    out: dict[str, list[ScoreEvidence]] = {}
    for record in records:
        out.setdefault(record.algorithm, []).append(record)
    return out


@cache
def score_evidence() -> dict[str, list[ScoreEvidence]]:
    """The bundled evidence (:data:`EVIDENCE_FILE`), read on first use."""
    return read_evidence(EVIDENCE_FILE)
