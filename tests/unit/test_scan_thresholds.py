"""Each algorithm is judged against its own threshold when one is set, else the common one."""

from __future__ import annotations

import json

import pytest

from lib.errors import ConfigError
from lib.ops.rebuild import APP_SETTINGS_FILE, load_seed
from lib.services.scanning.settings import ScanSettings


def test_an_algorithm_with_an_override_uses_it_and_the_others_use_the_common_threshold() -> None:
    settings = ScanSettings.from_values(
        {"scanner.threshold": 80, "scanner.threshold_by_algorithm": {"quantum_ai": 40}}
    )
    assert settings.threshold_for("quantum_ai") == 40
    assert settings.threshold_for("unirail_core") == 80


def test_the_seed_holds_what_the_in_sample_rule_chose() -> None:
    # The rule (README, evidence) found no threshold that beats random entries and pays after fees
    # in-sample for either algorithm on any timeframe, so both keep the contract's default of 80.
    values = {row["key"]: row["value"] for row in load_seed(APP_SETTINGS_FILE)}
    settings = ScanSettings.from_values(values)
    assert settings.threshold_for("unirail_core") == 80
    assert settings.threshold_for("quantum_ai") == 80
    assert list(settings.timeframes) == ["5", "15", "60"]


@pytest.mark.parametrize("override", [{"moon_ai": 40}, {"quantum_ai": 140}, {"quantum_ai": -1}])
def test_an_override_for_an_unknown_algorithm_or_out_of_range_is_refused(override: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="threshold_by_algorithm"):
        ScanSettings.from_values({"scanner.threshold_by_algorithm": override})


def test_the_seeded_thresholds_are_the_ones_the_evidence_was_reported_at() -> None:
    from lib.services.evidence import EVIDENCE_FILE

    values = {row["key"]: row["value"] for row in load_seed(APP_SETTINGS_FILE)}
    settings = ScanSettings.from_values(values)
    entries = json.loads(EVIDENCE_FILE.read_text(encoding="utf-8"))
    assert {(e["algorithm"], e["timeframe"]) for e in entries} >= {
        (a, tf) for a in ("unirail_core", "quantum_ai") for tf in settings.timeframes
    }
    for entry in entries:
        assert entry["threshold"] == settings.threshold_for(entry["algorithm"]), entry["command"]
