"""The run report's JSON Schema (schemas/run-report.schema.json), for checking every report the
tests produce (see the `reports_match_the_schema` fixture in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "run-report.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate_report(report: dict) -> None:
    """Raise AssertionError naming each place where `report` does not match the schema."""
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                for e in VALIDATOR.iter_errors(report)]
    assert not problems, "the run report does not match the schema:\n" + "\n".join(problems)


def is_run_report(data: object) -> bool:
    return isinstance(data, dict) and data.get("tool") == "cycle-vmss"
