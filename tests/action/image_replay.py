"""Build the action's image filesystem without a Docker engine, from the Dockerfile's own lines.

`replay(dockerfile)` reads FROM, ENV, WORKDIR, COPY, RUN and ENTRYPOINT and applies them, in
order, as overlayfs layers on a Debian bookworm root made by debootstrap. Any other instruction,
a COPY of a missing file, or a RUN that exits non-zero raises `BuildError`: the replay fails
where `docker build` would. RUN and the entrypoint run in a chroot inside fresh PID and mount
namespaces, so the entrypoint is PID 1 as in a container and every mount vanishes with it.

The base is an approximation of `python:3.X-slim-bookworm`, said plainly: Debian's own python3
(3.11 on bookworm, where the image has 3.12 from python.org) made into a venv at /usr/local, so
`python` and `pip` live where the image has them. Layers are cached by content under
`$CYCLE_VMSS_CACHE` (default `~/.cache/cycle-vmss/action-image`), like Docker's build cache.
Needs root, `debootstrap` (installed with apt-get when missing) and a Debian mirror.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

MIRROR = os.environ.get("CYCLE_VMSS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# What the official python images set (their PATH puts /usr/local/bin first; LANG for UTF-8).
BASE_ENV = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
HOST_CA_BUNDLE = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
_BASE_IMAGE = re.compile(r"^python:3\.\d+(?:\.\d+)?-slim(?:-bookworm)?(?:@sha256:[0-9a-f]{64})?$")


class BuildError(Exception):
    """The Dockerfile would not build."""


@dataclass
class Image:
    layers: list[Path]  # lowest first
    env: dict[str, str]
    workdir: str
    entrypoint: list[str]
    base_site_packages_bytes: int = 0
    site_packages_bytes: int = 0
    log: list[str] = field(default_factory=list)


def cache_root() -> Path:
    return Path(os.environ.get("CYCLE_VMSS_CACHE") or Path.home() / ".cache" / "cycle-vmss" / "action-image")


# --- the Dockerfile -------------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    if pending:
        raise BuildError("the Dockerfile ends inside a continued line")
    return out


def _env_pairs(args: str) -> dict[str, str]:
    parts = shlex.split(args)
    if len(parts) >= 2 and "=" not in parts[0]:  # legacy `ENV KEY value`
        return {parts[0]: " ".join(parts[1:])}
    pairs = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise BuildError(f"ENV {args!r}: expected KEY=value")
        pairs[key] = value
    return pairs


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


# --- .dockerignore --------------------------------------------------------------------------

def _ignore_patterns(context: Path) -> list[tuple[bool, str]]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        patterns.append((negate, line.lstrip("!").strip().strip("/")))
    return patterns


def _matches(rel: str, pattern: str) -> bool:
    regex = fnmatch.translate(pattern).replace(".*.*", ".*")
    if re.match(regex, rel):
        return True
    # A pattern naming a folder covers everything in it.
    parts = rel.split("/")
    return any(re.match(regex, "/".join(parts[:i])) for i in range(1, len(parts)))


def included(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last pattern that matches decides."""
    keep = True
    for negate, pattern in patterns:
        if _matches(rel, pattern):
            keep = negate
    return keep


def context_files(context: Path, source: str, patterns) -> list[Path]:
    root = (context / source).resolve()
    if not str(root).startswith(str(context.resolve())):
        raise BuildError(f"COPY {source}: outside the build context")
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file())
    else:
        raise BuildError(f"COPY {source}: not found in the build context")
    kept = [p for p in files if included(p.relative_to(context.resolve()).as_posix(), patterns)]
    if not kept:
        raise BuildError(f"COPY {source}: excluded by .dockerignore or empty")
    return kept


# --- mounts and namespaces ------------------------------------------------------------------

@contextmanager
def overlay(lowers: list[Path], upper: Path) -> Iterator[Path]:
    """The merged view of `lowers` (lowest first) with writes going to `upper`."""
    work = Path(tempfile.mkdtemp(prefix="ovl-work-", dir=upper.parent))
    merged = Path(tempfile.mkdtemp(prefix="ovl-merged-", dir=upper.parent))
    lowerdir = ":".join(str(p) for p in reversed(lowers))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lowerdir},upperdir={upper},workdir={work}", str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False)
        shutil.rmtree(work, ignore_errors=True)
        merged.rmdir()


def in_container(root: Path, argv: list[str], env: dict[str, str], workdir: str, **popen) -> subprocess.Popen:
    """Start `argv` chrooted in `root` as PID 1 of a new PID namespace, with only `env`."""
    assignments = [f"{k}={v}" for k, v in env.items()]
    command = ["unshare", "--pid", "--fork", "--mount", f"--mount-proc={root}/proc",
               "chroot", str(root), "/usr/bin/env", "-i", f"--chdir={workdir}", *assignments, *argv]
    return subprocess.Popen(command, **popen)


def container_pid1(launcher: subprocess.Popen, timeout: float = 10.0) -> int:
    """The host pid of the namespace's PID 1 (the child `unshare --fork` made)."""
    import time

    deadline = time.monotonic() + timeout
    path = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    while time.monotonic() < deadline:
        children = path.read_text().split() if path.exists() else []
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise RuntimeError("the container's PID 1 did not start")


# --- building -------------------------------------------------------------------------------

def ensure_debootstrap() -> str:
    found = shutil.which("debootstrap") or (Path("/usr/sbin/debootstrap").exists() and "/usr/sbin/debootstrap")
    if found:
        return str(found)
    apt = shutil.which("apt-get")
    if apt is None:
        raise BuildError("debootstrap is missing and there is no apt-get to install it")
    subprocess.run([apt, "update", "-q"], check=False, capture_output=True)
    done = subprocess.run([apt, "install", "-y", "-q", "--no-install-recommends", "debootstrap"],
                          capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if done.returncode != 0:
        raise BuildError(f"cannot install debootstrap: {done.stderr.strip()[-500:]}")
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


def _base(cache: Path, image_ref: str) -> tuple[Path, str]:
    if not _BASE_IMAGE.match(image_ref):
        raise BuildError(f"FROM {image_ref}: the replay knows only python:3.X-slim-bookworm bases")
    key = hashlib.sha256(json.dumps(["bookworm", BASE_PACKAGES, MIRROR, "venv /usr/local"]).encode()).hexdigest()[:16]
    base = cache / f"base-{key}"
    if (base / ".complete").exists():
        return base / "fs", key
    shutil.rmtree(base, ignore_errors=True)
    building = cache / f"building-{key}"
    shutil.rmtree(building, ignore_errors=True)
    debootstrap = ensure_debootstrap()
    done = subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                           "bookworm", str(building / "fs"), MIRROR], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"debootstrap failed: {done.stdout[-800:]}{done.stderr[-800:]}")
    # python and pip where the official image has them.
    venv = subprocess.run(["chroot", str(building / "fs"), "/usr/bin/python3", "-m", "venv", "/usr/local"],
                          capture_output=True, text=True)
    if venv.returncode != 0:
        raise BuildError(f"python venv in the base failed: {venv.stderr[-800:]}")
    subprocess.run(["chroot", str(building / "fs"), "apt-get", "clean"], capture_output=True)
    (building / ".complete").touch()
    building.rename(base)
    return base / "fs", key


def _site_packages_bytes(root: Path) -> int:
    total = 0
    for site in root.glob("usr/local/lib/python3*/site-packages"):
        for dirpath, _, files in os.walk(site):
            for name in files:
                path = Path(dirpath) / name
                if not path.is_symlink():
                    total += path.stat().st_size
    return total


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def replay(dockerfile: Path, context: Path | None = None) -> Image:
    """Apply the Dockerfile's instructions; cached layers are reused where nothing changed."""
    context = (context or dockerfile.parent).resolve()
    cache = cache_root()
    steps = instructions(dockerfile.read_text())
    if not steps or steps[0][0] != "FROM":
        raise BuildError("the Dockerfile must start with FROM")
    patterns = _ignore_patterns(context)
    with _locked(cache):
        base, key = _base(cache, steps[0][1].split()[0])
        image = Image(layers=[base], env=dict(BASE_ENV), workdir="/", entrypoint=[])
        chain = [base.parent.name]
        for word, args in steps[1:]:
            if word == "ENV":
                image.env.update({k: _expand(v, image.env) for k, v in _env_pairs(args).items()})
                key = _digest(key, word, args)
                continue
            if word == "ENTRYPOINT":
                try:
                    image.entrypoint = json.loads(args)
                except ValueError:
                    raise BuildError("ENTRYPOINT must be in exec form (a JSON array) so the "
                                     "program is PID 1 and receives signals") from None
                continue
            if word not in ("WORKDIR", "COPY", "RUN"):
                raise BuildError(f"{word}: the replay does not know this instruction")
            if word == "WORKDIR":
                image.workdir = os.path.join(image.workdir, _expand(args, image.env))
            content = _copy_digest(context, args, patterns) if word == "COPY" else ""
            key = _digest(key, word, args, image.workdir, json.dumps(image.env, sort_keys=True), content)
            layer = cache / f"layer-{key}"
            chain.append(layer.name)
            if not (layer / ".complete").exists():
                _apply(image, layer, word, args, context, patterns)
            image.layers.append(layer / "fs")
            image.log.append(f"{word} {args}")
        if not image.entrypoint:
            raise BuildError("no ENTRYPOINT")
        image.base_site_packages_bytes = _site_packages_bytes(base)
        with merged_view(image) as root:
            image.site_packages_bytes = _site_packages_bytes(root)
        # Keep only this chain: old layers are what changed code left behind.
        for old in cache.glob("layer-*"):
            if old.name not in chain:
                shutil.rmtree(old, ignore_errors=True)
    return image


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _copy_digest(context: Path, args: str, patterns) -> str:
    *sources, _ = shlex.split(args)
    digest = hashlib.sha256()
    for source in sources:
        for path in context_files(context, source, patterns):
            digest.update(path.relative_to(context).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _apply(image: Image, layer: Path, word: str, args: str, context: Path, patterns) -> None:
    shutil.rmtree(layer, ignore_errors=True)
    (layer / "fs").mkdir(parents=True)
    with overlay(image.layers, layer / "fs") as root:
        target = Path(str(root) + image.workdir)
        target.mkdir(parents=True, exist_ok=True)
        if word == "COPY":
            _copy(root, image.workdir, args, context, patterns)
        elif word == "RUN":
            shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")  # as docker build does
            env = {"HOME": "/root", **image.env}
            # The build host's trust store, for the build's own downloads only (a TLS-inspecting
            # proxy's CA, as on this workplace): given to the RUN, removed before the layer is kept.
            host_ca = root / "tmp" / ".build-host-ca.pem"
            if Path(HOST_CA_BUNDLE).exists():
                shutil.copyfile(HOST_CA_BUNDLE, host_ca)
                env.update({k: "/tmp/.build-host-ca.pem" for k in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")})
            proc = in_container(root, ["/bin/sh", "-c", args], env, image.workdir,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            output, _ = proc.communicate(timeout=900)
            host_ca.unlink(missing_ok=True)
            if proc.returncode != 0:
                raise BuildError(f"RUN {args} exited {proc.returncode}:\n{output[-2000:]}")
    (layer / ".complete").touch()


def _copy(root: Path, workdir: str, args: str, context: Path, patterns) -> None:
    *sources, dest = shlex.split(args)
    dest_abs = dest if dest.startswith("/") else os.path.join(workdir, dest)
    into_dir = dest.endswith("/") or len(sources) > 1 or dest in (".", "./")
    for source in sources:
        src_root = (context / source).resolve()
        for path in context_files(context, source, patterns):
            if src_root.is_dir():  # a folder's contents go into the destination
                target = os.path.join(dest_abs, path.relative_to(src_root).as_posix())
            elif into_dir:
                target = os.path.join(dest_abs, path.name)
            else:
                target = dest_abs
            out = Path(str(root) + os.path.normpath(target))
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)


@contextmanager
def merged_view(image: Image) -> Iterator[Path]:
    """A writable, throwaway view of the whole image (a container's own upper layer)."""
    scratch = Path(tempfile.mkdtemp(prefix="container-", dir=cache_root()))
    upper = scratch / "upper"
    upper.mkdir()
    try:
        with overlay(image.layers, upper) as root:
            yield root
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
