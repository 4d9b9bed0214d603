"""The CLI's flags come from the settings table: every setting, its variable, its help and the
docs/cli.md reference stay in step with `SETTINGS`."""

from __future__ import annotations

import os
import re

import pytest

from cycle_vmss.cli import build_parser, main, reference_markdown, settings_from
from cycle_vmss.settings import SETTINGS, Budget

from .conftest import REPO


def parse(*argv: str, env: dict | None = None):
    return settings_from(build_parser().parse_args(list(argv)), env or {})


def test_help_lists_every_setting_with_its_variable(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for spec in SETTINGS:
        assert f"--{spec.cli}" in text
        assert spec.env in text
    assert "-g GROUP" in text and "-n SCALE_SET" in text
    assert "cycle-vmss demo" in text and "130 cancelled" in text


def test_short_flags_and_booleans():
    s = parse("-g", "rg", "-n", "vmss", "--dry-run", "--reimage-all=false", "--max-unavailable", "25%")
    assert (s.resource_group, s.scale_set_name) == ("rg", "vmss")
    assert s.dry_run is True and s.reimage_all is False
    assert s.max_unavailable == Budget(25, percent=True)


def test_variables_are_read_and_a_flag_wins():
    env = {"CYCLE_VMSS_RESOURCE_GROUP": "rg-env", "CYCLE_VMSS_SCALE_SET_NAME": "vmss-env",
           "CYCLE_VMSS_MAX_SURGE": "2", "CYCLE_VMSS_IGNORE_AVAILABILITY": "TRUE"}
    s = parse("-n", "vmss-flag", env=env)
    assert (s.resource_group, s.scale_set_name) == ("rg-env", "vmss-flag")
    assert s.max_surge == Budget(2) and s.ignore_availability is True


def test_a_bad_variable_is_named_as_the_variable(capsys):
    with pytest.raises(SystemExit) as exited:
        parse("-g", "rg", "-n", "vmss", env={"CYCLE_VMSS_TIMEOUT_MINUTES": "forever"})
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == ("cycle-vmss: error: CYCLE_VMSS_TIMEOUT_MINUTES: 'forever' is not accepted; "
                   "expected a whole number of minutes from 1 to 1440\n")


def test_a_bad_flag_over_a_good_variable_is_named_as_the_flag(capsys):
    with pytest.raises(SystemExit):
        parse("-g", "rg", "-n", "vmss", "--poll-interval-seconds", "0",
              env={"CYCLE_VMSS_POLL_INTERVAL_SECONDS": "5"})
    assert capsys.readouterr().err.startswith("cycle-vmss: error: --poll-interval-seconds: '0'")


def test_docs_reference_is_the_generated_one():
    docs = (REPO / "docs" / "cli.md").read_text()
    section = re.search(r"<!-- cli-reference:begin[^\n]*\n(.*?)<!-- cli-reference:end -->", docs, re.S)
    assert section, "docs/cli.md has no generated CLI reference"
    assert section.group(1).strip() == reference_markdown()


@pytest.mark.parametrize("argv, line", [
    (["-g", "rg", "-n", "vmss", "--max-unavailble", "2"],
     "cycle-vmss: error: unknown flag --max-unavailble; did you mean --max-unavailable? "
     "(`cycle-vmss --help` lists them all)"),
    (["-g", "rg", "-n", "vmss", "--max-un", "2"],  # never taken as an abbreviation
     "cycle-vmss: error: unknown flag --max-un; did you mean --max-unavailable? (`cycle-vmss --help` lists them all)"),
    (["-g", "rg", "-n", "vmss", "--frobnicate"], "cycle-vmss: error: unrecognized arguments: --frobnicate"),
])
def test_an_unknown_flag_is_one_line_with_the_flag_it_was_probably_meant_to_be(argv, line, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err == line + "\n"


def test_run_bare_it_shows_the_usage(capsys, monkeypatch):
    for name in [n for n in os.environ if n.startswith("CYCLE_VMSS_")]:
        monkeypatch.delenv(name)
    assert main([]) == 2
    out = capsys.readouterr()
    assert out.out.startswith("usage: cycle-vmss -g GROUP -n SCALE_SET [options]") and out.err == ""
