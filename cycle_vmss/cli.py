"""The `cycle-vmss` command (also `python -m cycle_vmss`).

Every flag is generated from `settings.SETTINGS`, and each also reads `CYCLE_VMSS_<NAME>` from
the environment (a flag wins). Validation is `build_settings`'; this module only turns its
`SettingError` into one line and exit 2, and a report into a summary and an exit code.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import sys
import threading
from typing import Mapping, NoReturn, Sequence

from cycle_vmss import __version__
from cycle_vmss.signals import install_signal_handlers
from cycle_vmss.settings import BOOLEAN, SETTINGS, SPECS, Settings, SettingError, build_settings, raw_from_env

PROG = "cycle-vmss"

# Where each setting appears in --help; a setting missing here still appears, under "other".
_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("what to reimage", ("resource_group", "scale_set_name", "subscription_id", "instance_ids",
                         "reimage_all")),
    ("availability and pace", ("max_unavailable", "max_surge", "min_ready_seconds", "timeout_minutes",
                               "health_source", "ignore_initial_health", "ignore_availability",
                               "poll_interval_seconds")),
    ("run", ("dry_run", "report_file", "arm_endpoint")),
)

_METAVARS = {"resource_group": "GROUP", "scale_set_name": "SCALE_SET", "subscription_id": "GUID",
             "max_unavailable": "N|N%", "max_surge": "N|N%", "health_source": "auto|extension|none",
             "report_file": "PATH", "arm_endpoint": "URL"}

EPILOG = """\
Each flag can also be given as an environment variable CYCLE_VMSS_<FLAG> (upper case, dashes
to underscores, e.g. CYCLE_VMSS_MAX_UNAVAILABLE=2); a flag on the command line wins.

Sign-in uses the Azure default chain: AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET,
workload identity, managed identity, then `az login`. AZURE_AUTHORITY_HOST,
AZURE_RESOURCE_MANAGER_ENDPOINT and REQUESTS_CA_BUNDLE reach another cloud.

exit codes: 0 succeeded or dry run, 1 the rollout failed or was blocked, 2 nothing was changed
(bad input, preflight refusal, sign-in or permission problem), 130 cancelled.

examples:
  cycle-vmss -g rg-web -n vmss-web --dry-run
  cycle-vmss -g rg-web -n vmss-web --max-unavailable 20% --report-file run.json
  cycle-vmss demo          # a full rolling reimage against the built-in simulator
"""


def field_docs() -> dict[str, str]:
    """The one-line docstrings under each `Settings` field, so --help and the code agree."""
    try:
        tree = ast.parse(inspect.getsource(Settings))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and \
                isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def is_boolean(field: str) -> bool:
    return SPECS[field].accepted == BOOLEAN


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def help_for(field: str, docs: Mapping[str, str]) -> str:
    spec = SPECS[field]
    text = docs.get(field, "").rstrip(".").replace("; None = ", "; if not given, ")
    accepted = "true or false; the flag alone means true" if is_boolean(field) else spec.accepted
    parts = [f"{text}." if text else "", f"Accepts {accepted}."]
    if spec.default is None and field in ("resource_group", "scale_set_name"):
        parts.append("Required.")
    elif spec.default not in (None, ""):
        parts.append(f"Default: {spec.default}.")
    parts.append(f"Env: {spec.env}.")
    return " ".join(p for p in parts if p).replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} -g GROUP -n SCALE_SET [options]\n       {PROG} demo [--report-file PATH]",
        description="Reimage every instance of an Azure VM Scale Set one budgeted step at a time, "
                    "while the service on it stays up.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    docs = field_docs()
    placed: set[str] = set()
    for title, names in _GROUPS + (("other", tuple(s.field for s in SETTINGS)),):
        members = [SPECS[n] for n in names if n in SPECS and n not in placed]
        if not members:
            continue
        group = parser.add_argument_group(title)
        for spec in members:
            placed.add(spec.field)
            flags = ([f"-{spec.short}"] if spec.short else []) + [f"--{spec.cli}"]
            kwargs: dict = {"dest": spec.field, "default": None, "help": help_for(spec.field, docs)}
            if is_boolean(spec.field):
                kwargs.update(nargs="?", const="true", metavar="true|false")
            else:
                kwargs["metavar"] = _METAVARS.get(spec.field, spec.cli.split("-")[-1].upper())
            group.add_argument(*flags, **kwargs)
    return parser


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Flags over CYCLE_VMSS_* variables; a bad value names the flag or the variable it came from."""
    from_env = raw_from_env(environ)
    raw = dict(from_env)
    flags = {s.field: getattr(args, s.field) for s in SETTINGS if getattr(args, s.field, None) is not None}
    raw.update(flags)
    try:
        return build_settings(raw)
    except SettingError as err:
        message = str(err)
        for spec in SETTINGS:
            label = f"--{spec.cli}"
            if message.startswith(label + ":") and spec.field in from_env and spec.field not in flags:
                message = spec.env + message[len(label):]
        fail(message)


def run(settings: Settings, cancelled: threading.Event | None = None) -> int:
    from cycle_vmss.report import exit_code
    from cycle_vmss.progress import TerminalProgress, print_summary
    from cycle_vmss.runner import execute

    if cancelled is None:
        cancelled = threading.Event()
        install_signal_handlers(cancelled)
    with TerminalProgress() as progress:
        report = execute(settings, listener=progress, cancelled=cancelled)
    print()
    print_summary(report)
    if settings.report_file:
        print(f"report: {os.path.abspath(settings.report_file)}")
    code = exit_code(report)
    if code in (1, 2):
        print(f"{PROG}: error: {report.message or report.result}", file=sys.stderr)
    sys.stdout.flush()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["demo"]:
            from cycle_vmss.demo import main as demo_main
            return demo_main(argv[1:])
        # Before the heavy imports: a cancel while starting up still ends with a report.
        cancelled = threading.Event()
        install_signal_handlers(cancelled)
        args = build_parser().parse_args(argv)
        from cycle_vmss import pipelines
        if pipelines.active(os.environ):  # on an Azure Pipelines agent: logging commands, outputs
            return pipelines.main({s.field: getattr(args, s.field) for s in SETTINGS},
                                  cancelled=cancelled)
        return run(settings_from(args, os.environ), cancelled)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def reference_markdown() -> str:
    """The README's CLI reference, generated from the settings table (a test keeps them equal)."""
    docs = field_docs()
    rows = ["| flag | environment variable | default | accepted | what it does |",
            "|---|---|---|---|---|"]
    for spec in SETTINGS:
        flag = f"`--{spec.cli}`" + (f", `-{spec.short}`" if spec.short else "")
        default = ("required" if spec.field in ("resource_group", "scale_set_name")
                   else f"`{spec.default}`" if spec.default not in (None, "") else "—")
        accepted = "`true` or `false`; the flag alone means `true`" if is_boolean(spec.field) \
            else spec.accepted
        doc = docs.get(spec.field, "").replace("; None = ", "; if not given, ")
        rows.append(f"| {flag} | `{spec.env}` | {default} | {accepted} | {doc} |")
    return "\n".join(rows)
