"""The README is a short front door whose generated tables match action.yml; the docs' links
resolve; every file that names the repository names the one in pyproject.toml; and nothing a
user reads points at files they do not have."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import gen_docs  # noqa: E402

README = REPO / "README.md"
MARKDOWN = [README, REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\((?!https?://|mailto:)([^)\s]*)\)")
FENCE = re.compile(r"^(`{3,}).*?^\1", re.M | re.S)


def test_the_readme_is_a_front_door():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:3] == ["Quick start: GitHub Actions (OIDC, no secret)", "Quick start: Azure Pipelines",
                            "Quick start: command line"]
    for needed in ("Action inputs", "Action outputs", "Permissions", "Exit codes", "Documentation"):
        assert needed in headings
    for command in ("make test", "make demo", "cycle-vmss demo", "pip install cycle-vmss"):
        assert command in text, command


def test_the_readme_tables_are_generated_from_action_yml():
    blocks = gen_docs.generated_blocks(README.read_text())
    assert blocks == {"action-inputs": gen_docs.inputs_table(), "action-outputs": gen_docs.outputs_table()}
    assert gen_docs.regenerate(README.read_text()) == README.read_text()


@pytest.mark.parametrize("document", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(document):
    text = FENCE.sub("", document.read_text())
    for target in LINK.findall(text):
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        assert resolved.exists(), f"{document.name}: {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{document.name}: {target}"


def _anchors(document: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", FENCE.sub("", document.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("document", gen_docs.documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_mention_of_the_repository_is_the_one_in_pyproject(document):
    assert gen_docs.mentions(document.read_text()) <= {gen_docs.repository()}


def test_a_fork_changes_the_name_in_one_place():
    text = "uses: cycle-vmss/cycle-vmss@v1\nname: cycle-vmss/cycle-vmss\nghcr.io/cycle-vmss/cycle-vmss@sha256\n"
    moved = gen_docs.with_repository(text, "someone/vmss-tool")
    assert moved == text.replace("cycle-vmss/cycle-vmss", "someone/vmss-tool")
    third_party = "uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n"
    assert gen_docs.with_repository(third_party, "someone/vmss-tool") == third_party


def test_the_examples_and_docs_name_the_repository():
    named = [p for p in gen_docs.documents() if gen_docs.repository() in p.read_text()]
    assert {README, REPO / "docs" / "github-action.md", REPO / "docs" / "azure-pipelines.md",
            REPO / "examples" / "github-many-scale-sets.yml"} <= set(named)


@pytest.mark.parametrize("document", [*MARKDOWN, *gen_docs.documents()], ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_points_at_files_users_do_not_have(document):
    assert not re.search(r"SPEC(\.md| section| §)|\.\./shared/", document.read_text())
