"""A cancel that arrives while the process starts still ends with a report and exit 130: the
signal handlers go in before anything heavy is imported (azure, rich)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys, signal
import {module}
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('azure', 'rich', 'msal', 'requests'))
print(signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None), heavy)
"""


def probe(module: str) -> str:
    return subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_the_cli_module_imports_nothing_heavy_before_main_installs_the_handlers():
    # main() installs the handlers before parsing or importing the runner.
    assert probe("cycle_vmss.cli") == "False []"
    assert probe("cycle_vmss.signals") == "False []"



def test_the_action_entrypoint_installs_the_handlers_before_its_heavy_imports(tmp_path):
    # Read the module up to its first heavy import and run just that part: handlers installed.
    source = (REPO / "entrypoint.py").read_text().split("from actions_toolkit import core")[0]
    (tmp_path / "head.py").write_text(source)
    out = subprocess.run([sys.executable, "-c", PROBE.format(module="head")], capture_output=True,
                         text=True, check=True, cwd=tmp_path,
                         env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}).stdout
    assert out.strip() == "True []"
