"""The package as PyPI serves it: the sdist and wheel `python -m build` makes, their metadata as
`twine check` reads it, the wheel's file list, and `pip install <wheel>` in a fresh venv running
`cycle-vmss demo` (the README's command-line quick start)."""

from __future__ import annotations

import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest

from cycle_vmss import __version__

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # Without --sdist/--wheel: the wheel is built from the sdist, which proves the sdist complete.
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


def test_twine_check_passes(dists):
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dists.values())],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_wheel_holds_the_package_and_its_licence_only(dists):
    assert dists["wheel"].name == f"cycle_vmss-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    info = f"cycle_vmss-{__version__}.dist-info/"
    outside = [n for n in names if not n.startswith(("cycle_vmss/", info))]
    assert not outside, outside
    assert not [n for n in names if n.startswith(("bench/", "tests/", "cycle_vmss/bench/"))]
    assert "cycle_vmss/simulator/server.py" in names  # `cycle-vmss demo` needs it
    assert f"{info}licenses/LICENSE" in names
    metadata = zipfile.ZipFile(dists["wheel"]).read(f"{info}METADATA").decode()
    assert f"Version: {__version__}\n" in metadata
    assert "License-Expression: MIT\n" in metadata
    assert "Requires-Dist: trustme" in metadata  # the demo's simulator comes along


@pytest.mark.slow  # a fresh venv and every dependency installed (from pip's cache when warm)
def test_pip_install_of_the_wheel_then_demo_works(dists, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, tool = env_dir / "bin" / "python", env_dir / "bin" / "cycle-vmss"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              str(dists["wheel"])], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    started = time.monotonic()
    demo = subprocess.run([str(tool), "demo", "--report-file", str(tmp_path / "report.json")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "report:" in demo.stdout and (tmp_path / "report.json").is_file()
    print(f"cycle-vmss demo from the wheel took {seconds:.1f} s")
