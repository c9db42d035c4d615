"""Every score's out-of-sample evidence reaches the user: signals-api and diagnostics show, per
algorithm and timeframe, whether it beat random entries after fees and whether it paid, with the
figures and the date of the report (``data/evidence.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import httpx
import pytest

from lib.core.evidence import ScoreEvidence
from lib.errors import ConfigError
from lib.research.report import update_evidence_file
from lib.services.evidence import EVIDENCE_FILE, read_evidence

BUNDLED = json.loads(EVIDENCE_FILE.read_text())


def _entry(algorithm: str, timeframe: str, **changes: object) -> ScoreEvidence:
    base = dict(next(e for e in BUNDLED if e["algorithm"] == "unirail_core"))
    base.update(algorithm=algorithm, timeframe=timeframe, **changes)
    return ScoreEvidence(**base)  # type: ignore[arg-type]


def test_the_bundled_evidence_covers_both_algorithms_and_says_quantum_ai_shows_no_edge() -> None:
    evidence = read_evidence(EVIDENCE_FILE)
    assert set(evidence) == {"unirail_core", "quantum_ai"}
    five_minute = {e.algorithm: e for entries in evidence.values() for e in entries if e.timeframe == "5"}
    assert not five_minute["quantum_ai"].edge_shown
    assert not five_minute["unirail_core"].pays
    assert "loses money after fees" in five_minute["unirail_core"].verdict


def test_a_report_replaces_only_its_own_algorithm_and_timeframe(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    update_evidence_file(path, _entry("unirail_core", "5", threshold=30.0))
    update_evidence_file(path, _entry("unirail_core", "60", threshold=10.0))
    update_evidence_file(path, _entry("unirail_core", "5", threshold=70.0))
    entries = read_evidence(path)["unirail_core"]
    assert [(e.timeframe, e.threshold) for e in entries] == [("5", 70.0), ("60", 10.0)]


def test_a_malformed_evidence_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps([{"algorithm": "unirail_core"}]))
    with pytest.raises(ConfigError, match="not a list of evidence entries"):
        read_evidence(path)
    assert read_evidence(tmp_path / "missing.json") == {}


async def test_signals_api_answers_the_evidence_beside_the_signals(http: httpx.AsyncClient) -> None:
    response = await http.post("/functions/v1/signals-api", json={"action": "list", "limit": 1})
    assert response.status_code == 200, response.text
    evidence = response.json()["evidence"]
    assert evidence == {
        algorithm: [asdict(e) for e in entries] for algorithm, entries in read_evidence(EVIDENCE_FILE).items()
    }


async def test_diagnostics_shows_the_evidence_to_anyone(http: httpx.AsyncClient) -> None:
    response = await http.post("/functions/v1/diagnostics")
    assert response.status_code == 200
    shown = {
        (e["algorithm"], e["timeframe"]): e["edge_shown"]
        for es in response.json()["evidence"].values()
        for e in es
    }
    assert shown == {(e["algorithm"], e["timeframe"]): e["edge_shown"] for e in BUNDLED}
