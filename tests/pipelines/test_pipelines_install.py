"""The template's install step run for real: on a copy of the repository's files rewritten the
way the release workflow rewrites them (scripts/release.py) for a wheel and sdist built here,
it installs that wheel and every dependency with `--require-hashes` into a private venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

import azp_expander
from azp_agent import REPO, TEMPLATE

sys.path.insert(0, str(REPO / "scripts"))
import release  # noqa: E402

from cycle_vmss import __version__  # noqa: E402

REQUIRED = {"azureSubscription": "conn", "resourceGroupName": "rg-web", "scaleSetName": "vmss-web"}
IMAGE = "ghcr.io/cycle-vmss/cycle-vmss@sha256:" + "ab" * 32


def install_script(template) -> tuple[str, dict]:
    step = azp_expander.task_step(azp_expander.expand(template, REQUIRED), "PythonScript@0")
    return step["inputs"]["script"], step["env"]


def run_install(tmp_path, template, **env):
    script, step_env = install_script(template)
    (tmp_path / "install.py").write_text(script)
    temp = tmp_path / "_temp"
    temp.mkdir(exist_ok=True)
    environment = {**os.environ, **{k: azp_expander.as_text(v) for k, v in step_env.items()},
                   "AGENT_TEMPDIRECTORY": str(temp), **env}
    return subprocess.run([sys.executable, str(tmp_path / "install.py")], env=environment,
                          capture_output=True, text=True, timeout=600), temp


def test_the_template_on_main_refuses_to_install_an_unreleased_tool(tmp_path):
    done, temp = run_install(tmp_path, TEMPLATE)
    assert done.returncode == 2
    assert done.stdout.startswith("##vso[task.logissue type=error;]This template is not from a release")
    assert not (temp / "cycle-vmss").exists()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """action.yml and the template as the release commit has them, and the dists it publishes."""
    root = tmp_path_factory.mktemp("release")
    dist = root / "dist"
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in (release.ACTION, release.TEMPLATE):
        shutil.copy(REPO / name, root / name)
    release.release(IMAGE, dist, root)
    return root


@pytest.mark.slow  # builds the dists once
def test_the_release_points_the_action_at_the_image_and_pins_the_tool(released):
    action = yaml.safe_load((released / release.ACTION).read_text())
    assert action["runs"] == {"using": "docker", "image": f"docker://{IMAGE}"}
    lock = release.lock_of((released / release.TEMPLATE).read_text())
    wheel_and_sdist = rf"cycle-vmss=={re.escape(__version__)} \\\n(    --hash=sha256:[0-9a-f]{{64}}( \\)?\n){{2}}[a-z]"
    assert re.match(wheel_and_sdist, lock), lock[:300]
    check = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                            "vendor.github-actions", str(released / release.ACTION)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


@pytest.mark.slow  # a venv and every dependency installed (from pip's cache when warm)
def test_the_released_template_installs_the_tool_with_hashes(released, tmp_path):
    done, temp = run_install(tmp_path, released / release.TEMPLATE, PIP_FIND_LINKS=str(released / "dist"))
    assert done.returncode == 0, done.stdout + done.stderr
    bin_dir = temp / "cycle-vmss" / "bin"
    assert done.stdout.splitlines()[-1] == f"##vso[task.prependpath]{bin_dir}"
    assert f"cycle-vmss {__version__}" in done.stdout
    assert sorted(p.name for p in bin_dir.iterdir()) == ["cycle-vmss"]  # nothing else on PATH


@pytest.mark.slow
def test_a_tampered_wheel_is_refused(released, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(released / "dist", dist)
    wheel = next(dist.glob("*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    done, temp = run_install(tmp_path, released / release.TEMPLATE, PIP_FIND_LINKS=str(dist))
    assert done.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in done.stderr
