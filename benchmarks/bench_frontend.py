"""Front-end micro-benchmarks: parse and check of a 500-line rules file.

The parser is built once per process (a cached factory), so these measure the
per-file cost a server or the CLI pays after start-up.
"""

from __future__ import annotations

from typing import Any

from audience.dsl.check import check
from audience.dsl.parser import parse
from audience.schema import Schema
from benchmarks.frontend_corpus import EXAMPLES, rules_text

TEXT = rules_text(500)
SCHEMA = Schema.load(EXAMPLES / "maison.toml")


def test_rules_file_has_500_lines() -> None:
    assert 480 <= TEXT.count("\n") <= 520


def test_parse_500_lines(benchmark: Any) -> None:
    parse(TEXT)  # build the parser outside the timing
    program = benchmark(parse, TEXT, filename="bench.rules")
    assert len(program.definitions) > 30


def test_parse_and_check_500_lines(benchmark: Any) -> None:
    parse(TEXT)

    def run() -> int:
        return len(check(parse(TEXT, filename="bench.rules"), SCHEMA))

    assert benchmark(run) == 0
