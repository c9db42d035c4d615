"""The host commands' arguments: refused before anything starts (exit 2, argparse's one line)."""

from __future__ import annotations

import pytest

from lib.cli import build_parser


@pytest.mark.parametrize(
    "argv",
    [
        ["executor", "--source-address", "host-a"],
        ["executor", "--interval-s", "0"],
        ["executor", "--share", "1.5"],
        ["scanner", "--source-address", "127.0.0"],
        ["scanner", "--lease-s", "-1"],
    ],
)
def test_a_bad_host_argument_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert f"argument {argv[1]}" in capsys.readouterr().err


def test_a_source_address_is_normalized() -> None:
    args = build_parser().parse_args(["executor", "--source-address", " 127.0.0.2 "])
    assert args.source_address == "127.0.0.2"
    assert build_parser().parse_args(["scanner", "--source-address", "::1"]).source_address == "::1"
