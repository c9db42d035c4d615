"""pg_cron schedules: a job per timeframe and algorithm at candle close; executor and tracker every minute."""

from __future__ import annotations

from lib.core.timeframes import TIMEFRAMES
from lib.ops.schedules import CRON_BY_TIMEFRAME, cron_jobs


def test_every_bybit_interval_has_a_cron_expression() -> None:
    assert set(CRON_BY_TIMEFRAME) == set(TIMEFRAMES)


def test_scans_run_at_their_candle_close_and_the_executor_and_tracker_every_minute() -> None:
    jobs = {job.name: job for job in cron_jobs(["5", "60"], ["unirail_core"])}
    assert jobs["aitradex-scan-5-unirail_core"].schedule == "*/5 * * * *"
    assert jobs["aitradex-scan-60-unirail_core"].schedule == "0 * * * *"
    assert jobs["aitradex-scan-60-unirail_core"].body == {
        "action": "scan",
        "timeframe": "60",
        "algorithm": "unirail_core",
    }
    assert jobs["aitradex-executor"].schedule == jobs["aitradex-order-tracker"].schedule == "* * * * *"


def test_the_cron_command_posts_to_the_function_with_the_key_from_vault_not_inline() -> None:
    job = cron_jobs(["15"], ["quantum_ai"])[0]
    command = job.command("https://fn.example.com/functions/v1/")
    assert command.startswith(
        "select net.http_post(url := 'https://fn.example.com/functions/v1/unireli-core-scanner'"
    )
    assert "vault.decrypted_secrets where name = 'aitradex_service_role_key'" in command
    assert "eyJ" not in command  # no JWT is ever embedded
    assert '"timeframe": "15"' in command


def test_quotes_in_values_cannot_break_out_of_the_sql_literal() -> None:
    job = cron_jobs(["5"], ["unirail_core"])[0]
    command = job.command("https://x.example/it's/functions/v1")
    assert "it''s" in command
