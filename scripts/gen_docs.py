"""The generated parts of the docs, and the repository's name wherever the docs say it.

    python scripts/gen_docs.py      # rewrite them in place (after action.yml or the name changed)

The README's action inputs and outputs tables are generated from action.yml (a test keeps them
equal). The repository's owner/name lives in one place, pyproject.toml's [project.urls]
Repository; every snippet, template, example and workflow that names it must say the same (a
test checks), and this script rewrites them after a fork changes it there.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- (?P<name>[a-z-]+):begin[^\n]*-->\n)(?P<body>.*?)(<!-- (?P=name):end -->)", re.S)
# Where a text names the repository: a `uses:` of the action at a version, a repository
# resource's `name:`, a GitHub URL or the image's GHCR name.
MENTION = re.compile(r"(?:uses: |name: |github\.com/|ghcr\.io/)(?P<repo>[\w.-]+/[\w.-]+?)(?=@v|[/\s`'\")\]#:@]|$)", re.M)


def repository() -> str:
    """owner/name, from pyproject.toml's [project.urls] Repository."""
    url = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    return url.removeprefix("https://github.com/")


def documents() -> list[Path]:
    """Every file a user reads or pastes from that may name the repository."""
    found = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", REPO / "action.yml",
             *sorted(REPO.glob("azure-pipelines*.yml")), *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "examples").glob("*.yml")), *sorted((REPO / ".github" / "workflows").glob("*.yml"))]
    return [path for path in found if path.is_file()]


def mentions(text: str) -> set[str]:
    """The owner/name of this repository wherever the text names it. Third-party actions in
    workflows are pinned by SHA (`uses: owner/name@<40 hex>`), so they never match `@v`."""
    return {m["repo"] for m in MENTION.finditer(text)
            if m["repo"].split("/")[1].lower() == "cycle-vmss" or text[m.end():m.end() + 2] == "@v"}


def with_repository(text: str, repo: str) -> str:
    names = mentions(text)
    return MENTION.sub(lambda m: m.group(0).replace(m["repo"], repo) if m["repo"] in names else m.group(0), text)


def _one_line(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def inputs_table() -> str:
    inputs = yaml.safe_load((REPO / "action.yml").read_text())["inputs"]
    rows = ["| input | default | what it does |", "|---|---|---|"]
    for name, meta in inputs.items():
        if meta.get("required"):
            default = "required"
        elif meta.get("default") not in (None, ""):
            default = f"`{meta['default']}`"
        else:
            default = "—"
        rows.append(f"| `{name}` | {default} | {_one_line(meta['description'])} |")
    return "\n".join(rows)


def outputs_table() -> str:
    outputs = yaml.safe_load((REPO / "action.yml").read_text())["outputs"]
    rows = ["| output | value |", "|---|---|"]
    rows += [f"| `{name}` | {_one_line(meta['description'])} |" for name, meta in outputs.items()]
    return "\n".join(rows)


GENERATORS = {"action-inputs": inputs_table, "action-outputs": outputs_table}


def generated_blocks(text: str) -> dict[str, str]:
    return {m["name"]: m["body"].strip() for m in BLOCK.finditer(text) if m["name"] in GENERATORS}


def regenerate(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + GENERATORS[m["name"]]() + "\n" + m.group(4)
                     if m["name"] in GENERATORS else m.group(0), text)


def main() -> None:
    repo = repository()
    for path in documents():
        text = path.read_text(encoding="utf-8")
        new = with_repository(regenerate(text) if path.name == "README.md" else text, repo)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
