"""JSON log lines: one line each, the traceback of an unexpected error as one field, and no secrets in it."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from lib.log import REDACTED, JsonFormatter, configure_logging, log_event, redact, redact_text, request_id_var

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quietened = {name: logging.getLogger(name).level for name in ("uvicorn.access", "httpx", "httpcore")}
    configure_logging("INFO", out)  # what a server process does
    try:
        yield out
    finally:
        root.handlers, root.level = handlers, level
        for name, previous in quietened.items():
            logging.getLogger(name).setLevel(previous)


def lines_of(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _fail_with(message: str) -> None:
    raise RuntimeError(message)


def test_an_error_logged_with_exc_info_carries_its_traceback_as_one_field_on_one_line(
    stream: io.StringIO,
) -> None:
    logger = logging.getLogger("aitradex.test")
    token = request_id_var.set("req-traceback-1")
    try:
        try:
            _fail_with("the bug")
        except RuntimeError as exc:
            log_event(logger, "unhandled_error", level=logging.ERROR, exc_info=exc, function="f")
    finally:
        request_id_var.reset(token)

    raw = stream.getvalue()
    assert raw.count("\n") == 1  # one record, one line
    (line,) = lines_of(stream)
    assert (line["level"], line["event"], line["request_id"]) == (
        "error",
        "unhandled_error",
        "req-traceback-1",
    )
    assert line["error_type"] == "RuntimeError"
    traceback = str(line["traceback"])
    assert traceback.startswith("Traceback (most recent call last):")
    assert "in _fail_with" in traceback
    assert traceback.splitlines()[-1] == "RuntimeError: the bug"


def test_a_line_without_an_error_has_no_traceback(stream: io.StringIO) -> None:
    log_event(logging.getLogger("aitradex.test"), "job_finished", job="scan")
    (line,) = lines_of(stream)
    assert "traceback" not in line
    assert "error_type" not in line


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("secret=hunter2 at /internal/path", "hunter2"),
        ("bad creds {'api_key': 'KEY-123', 'api_secret': 'S3CR3T xyz'}", "S3CR3T"),
        ('payload {"password": "pa ss", "n": 1}', "pa ss"),
        ("headers Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("X-BAPI-API-KEY: LIVEKEY9", "LIVEKEY9"),
        (f"claims came from {JWT}", JWT),
        ("AITRADEX_MASTER_KEYS=1:c2VjcmV0 in the environment", "c2VjcmV0"),
        ("refresh_token=rt-42&x=1", "rt-42"),
    ],
)
def test_secrets_in_an_exception_message_never_reach_the_traceback_field(
    stream: io.StringIO, message: str, secret: str
) -> None:
    try:
        _fail_with(message)
    except RuntimeError as exc:
        log_event(logging.getLogger("aitradex.test"), "unhandled_error", level=logging.ERROR, exc_info=exc)
    assert secret not in stream.getvalue()
    (line,) = lines_of(stream)
    assert REDACTED in str(line["traceback"])


def test_a_chained_error_keeps_both_tracebacks_and_redacts_both(stream: io.StringIO) -> None:
    try:
        try:
            _fail_with("token=first-secret")
        except RuntimeError as first:
            raise ValueError("api_secret: second-secret") from first
    except ValueError as exc:
        log_event(logging.getLogger("aitradex.test"), "unhandled_error", level=logging.ERROR, exc_info=exc)
    (line,) = lines_of(stream)
    traceback = str(line["traceback"])
    assert "The above exception was the direct cause" in traceback
    assert "first-secret" not in traceback
    assert "second-secret" not in traceback


def test_exception_names_and_plain_text_are_left_alone() -> None:
    text = 'jwt.exceptions.InvalidTokenError: Signature verification failed\n  File "x.py", line 3'
    assert redact_text(text) == text
    assert redact_text("tokens.verify(token, self._jwt_secret)") == "tokens.verify(token, self._jwt_secret)"


def test_field_redaction_by_name_is_unchanged() -> None:
    assert redact({"api_key": "k", "nested": [{"jwt_secret": "s"}], "symbol": "BTCUSDT"}) == {
        "api_key": REDACTED,
        "nested": [{"jwt_secret": REDACTED}],
        "symbol": "BTCUSDT",
    }


def test_a_record_with_exc_info_from_any_logger_is_formatted_the_same_way() -> None:
    try:
        _fail_with("password=pw1")
    except RuntimeError:
        record = logging.getLogger("uvicorn.error").makeRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (), sys.exc_info()
        )
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "Exception in ASGI application"
    assert "pw1" not in line["traceback"]
    assert line["traceback"].startswith("Traceback (most recent call last):")


def test_a_huge_field_is_cut_so_the_line_stays_small(stream: io.StringIO) -> None:
    log_event(
        logging.getLogger("aitradex.test"),
        "function_call",
        action="Q" * 200_000,
        items=list(range(10_000)),
        mapping={f"k{i}": i for i in range(10_000)},
        nested=[[[[[["deep"]]]]]],
    )
    raw = stream.getvalue()
    assert len(raw) < 4096
    (line,) = lines_of(stream)
    action = str(line["action"])
    assert action.startswith("Q" * 512)
    assert action.endswith("...[199488 more characters]")
    assert len(line["items"]) == 51  # type: ignore[arg-type]
    assert len(line["mapping"]) == 51  # type: ignore[arg-type]


def test_a_huge_message_from_any_logger_is_cut() -> None:
    record = logging.getLogger("uvicorn.error").makeRecord(
        "uvicorn.error", logging.WARNING, __file__, 1, "x" * 100_000, (), None
    )
    assert len(JsonFormatter().format(record)) < 1024


def _deep_stack(levels: int) -> None:
    """Raise from ``levels`` distinct frames (Python folds repeats of one frame into a single line)."""
    namespace: dict[str, object] = {}
    source = "def f0():\n    raise RuntimeError('bottom of a deep stack')\n" + "".join(
        f"def f{i}():\n    f{i - 1}()\n" for i in range(1, levels)
    )
    exec(source, namespace)  # noqa: S102 - test-only code built from constants
    namespace[f"f{levels - 1}"]()  # type: ignore[operator]


def test_a_deep_traceback_keeps_its_head_and_its_end_within_the_line_limit(stream: io.StringIO) -> None:
    try:
        _deep_stack(300)
    except RuntimeError as exc:
        log_event(logging.getLogger("aitradex.test"), "unhandled_error", level=logging.ERROR, exc_info=exc)
    raw = stream.getvalue()
    assert len(raw) <= 8192
    (line,) = lines_of(stream)
    traceback = str(line["traceback"])
    assert traceback.startswith("Traceback (most recent call last):")
    assert traceback.splitlines()[-1] == "RuntimeError: bottom of a deep stack"
    assert "characters cut" in traceback


def test_a_line_with_many_long_fields_is_reduced_to_its_core(stream: io.StringIO) -> None:
    log_event(logging.getLogger("aitradex.test"), "noisy", **{f"f{i}": "v" * 500 for i in range(40)})
    raw = stream.getvalue()
    assert len(raw) <= 8192
    (line,) = lines_of(stream)
    assert line["event"] == "noisy"
    assert line["truncated"] is True
