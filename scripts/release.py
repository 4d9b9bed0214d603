"""What a release writes into the files it tags, and the Pipelines template's dependency lock.

    python scripts/release.py lock requirements.txt     # the lock, from `uv pip compile`
    python scripts/release.py release --image ghcr.io/OWNER/REPO@sha256:... --dist dist/

`release` runs in the release workflow on a throwaway commit that only the tags reach: the
action's `image:` becomes the prebuilt image (by digest) instead of the Dockerfile, and the
Pipelines template's lock gains this release's own line, with the hashes of the sdist and the
wheel the workflow publishes. `uses: ./`, forks and main keep building from the Dockerfile.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACTION = "action.yml"
TEMPLATE = "azure-pipelines-template.yml"
DOCKERFILE_IMAGE = "  image: Dockerfile\n"
LOCK = re.compile(r'(?P<head>^(?P<indent> *)LOCK = r"""\n)(?P<body>.*?)(?P<tail>^(?P=indent)"""\n)', re.M | re.S)


def with_image(action: str, image: str) -> str:
    """action.yml running the prebuilt `image` (registry/name@sha256:digest)."""
    if not re.fullmatch(r"[a-z0-9.-]+/[a-z0-9._/-]+@sha256:[0-9a-f]{64}", image):
        raise ValueError(f"not an image by digest: {image}")
    if action.count(DOCKERFILE_IMAGE) != 1:
        raise ValueError("action.yml does not build from the Dockerfile")
    return action.replace(DOCKERFILE_IMAGE, f"  image: docker://{image}\n")


def lock_of(template: str) -> str:
    """The template's lock, unindented: a pip requirements file."""
    found = LOCK.search(template)
    indent = len(found["indent"])  # the block scalar's own indentation
    return "".join(line[indent:] if line.strip() else line for line in found["body"].splitlines(True))


def with_lock(template: str, lock: str) -> str:
    found = LOCK.search(template)
    pad = found["indent"]
    body = "".join(pad + line if line.strip() else line for line in lock.splitlines(True))
    return template[:found.start("body")] + body + template[found.end("body"):]


def tool_requirement(version: str, dists: list[Path]) -> str:
    hashes = sorted(hashlib.sha256(path.read_bytes()).hexdigest() for path in dists)
    return f"cycle-vmss=={version} \\\n" + " \\\n".join(f"    --hash=sha256:{h}" for h in hashes) + "\n"


def release(image: str, dist: Path, root: Path = REPO) -> None:
    dists = sorted([*dist.glob("cycle_vmss-*.whl"), *dist.glob("cycle_vmss-*.tar.gz")])
    versions = {re.match(r"cycle_vmss-([^-]+?)(?:-py3.*\.whl|\.tar\.gz)$", p.name).group(1) for p in dists}
    if len(dists) != 2 or len(versions) != 1:
        raise SystemExit(f"expected one sdist and one wheel of one version in {dist}")
    (version,) = versions
    template = (root / TEMPLATE).read_text(encoding="utf-8")
    if f"CYCLE_VMSS_TOOL_VERSION: {version}\n" not in template:
        raise SystemExit(f"{TEMPLATE} does not install version {version}")
    (root / TEMPLATE).write_text(with_lock(template, tool_requirement(version, dists) + lock_of(template)),
                                 encoding="utf-8")
    (root / ACTION).write_text(with_image((root / ACTION).read_text(encoding="utf-8"), image), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python scripts/release.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lock = commands.add_parser("lock", help="write a requirements file into the template's lock")
    lock.add_argument("requirements", type=Path)
    rel = commands.add_parser("release", help="point action.yml and the template at this release")
    rel.add_argument("--image", required=True)
    rel.add_argument("--dist", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "lock":
        template = REPO / TEMPLATE
        template.write_text(with_lock(template.read_text(encoding="utf-8"),
                                      args.requirements.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        release(args.image, args.dist)


if __name__ == "__main__":
    main()
