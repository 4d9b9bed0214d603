"""The `cycle-vmss` command (also `python -m cycle_vmss`).

Every flag is generated from `settings.SETTINGS`, and each also reads `CYCLE_VMSS_<NAME>` from
the environment (a flag wins). Validation is `build_settings`'; this module only turns its
`SettingError` into one line and exit 2, and a report into a summary and an exit code.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import tempfile
import threading
import time
from typing import Callable, Mapping, NoReturn, Sequence

from cycle_vmss import __version__
from cycle_vmss.signals import install_signal_handlers
from cycle_vmss.settings import SETTINGS, Settings, SettingError, SettingSpec, build_settings, raw_from_env

PROG = "cycle-vmss"

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
  cycle-vmss timeline run.json -o run.svg   # a picture of a finished run
"""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2, like every other bad input, with the flag
    a typo was probably meant to be; flags are never abbreviated (`--max-un` is a typo too)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            flags = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
            for word in unknown.group(1).split():
                flag = word.split("=")[0]
                guess = ([f for f in flags if f.startswith(flag)][:1]  # an abbreviation, spelled out
                         or difflib.get_close_matches(flag, flags, n=1, cutoff=0.75))
                if word.startswith("--") and guess:
                    fail(f"unknown flag {word}; did you mean {guess[0]}? (`{self.prog} --help` lists them all)")
        fail(message)


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def help_for(spec: SettingSpec) -> str:
    accepted = "true or false; the flag alone means true" if spec.boolean else spec.accepted
    parts = [spec.help, f"Accepts {accepted}."]
    if spec.required:
        parts.append("Required.")
    elif spec.default not in (None, ""):
        parts.append(f"Default: {spec.default}.")
    parts.append(f"Env: {spec.env}.")
    return " ".join(parts).replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage=(f"{PROG} -g GROUP -n SCALE_SET [options]\n       {PROG} demo [--report-file PATH]\n"
               f"       {PROG} timeline REPORT.json [-o FILE.svg]"),
        description="Reimage every instance of an Azure VM Scale Set one budgeted step at a time, "
                    "while the service on it stays up.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    groups = {title: parser.add_argument_group(title) for title in dict.fromkeys(s.group for s in SETTINGS)}
    for spec in SETTINGS:
        flags = ([f"-{spec.short}"] if spec.short else []) + [f"--{spec.cli}"]
        kwargs: dict = {"dest": spec.field, "default": None, "help": help_for(spec)}
        if spec.boolean:
            kwargs.update(nargs="?", const="true", metavar="true|false")
        else:
            kwargs["metavar"] = spec.metavar or spec.cli.split("-")[-1].upper()
        groups[spec.group].add_argument(*flags, **kwargs)
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


def run(settings: Settings, cancelled: threading.Event | None = None, *, credential=None,
        verdict: Callable[[], str] | None = None) -> int:
    """One run with a live view, then the summary, the report's path and, for a failure or a
    refusal, its one line on stderr. `credential` None: the default chain; `verdict` adds a line
    after the summary (the demo's simulator says what it saw)."""
    from cycle_vmss.progress import TerminalProgress, print_summary
    from cycle_vmss.report import exit_code
    from cycle_vmss.runner import execute

    if cancelled is None:
        cancelled = threading.Event()
        install_signal_handlers(cancelled)
    with TerminalProgress() as progress:
        report = execute(settings, credential=credential, listener=progress, cancelled=cancelled)
    print()
    print_summary(report)
    if verdict is not None and (line := verdict()):
        print(line)
    if settings.report_file:
        print(f"report: {os.path.abspath(settings.report_file)}")
    if (resume := report.continue_line("--skip-reimaged-since")) is not None:
        print(resume)
    code = exit_code(report)
    if code in (1, 2):
        print(f"{PROG}: error: {report.message or report.result}", file=sys.stderr)
    sys.stdout.flush()
    return code


def demo(argv: Sequence[str]) -> int:
    """`cycle-vmss demo`: the simulated target, run like any other."""
    from cycle_vmss.demo import simulated_target

    parser = _Parser(prog=f"{PROG} demo", description=(
        "Run a rolling reimage of a simulated six-instance zoned scale set over HTTPS on "
        "127.0.0.1, through the real Azure SDK. No Azure account needed."))
    parser.add_argument("--report-file", metavar="PATH",
                        help="where to write the JSON run report (default: a new file in the temp folder)")
    args = parser.parse_args(list(argv))
    report_file = args.report_file or os.path.join(
        tempfile.gettempdir(), f"cycle-vmss-demo-{time.strftime('%Y%m%d-%H%M%S')}.json")
    cancelled = threading.Event()
    install_signal_handlers(cancelled)
    with simulated_target(report_file) as target:
        try:
            settings = build_settings(target.raw_settings)
        except SettingError as err:
            fail(str(err))
        print(target.introduction, flush=True)
        return run(settings, cancelled, credential=target.credential, verdict=target.verdict)


def timeline(argv: Sequence[str]) -> int:
    """`cycle-vmss timeline REPORT.json -o FILE.svg`: a picture of a finished run."""
    from cycle_vmss.timeline import main as timeline_main
    return timeline_main(argv)


SUBCOMMANDS = {"demo": demo, "timeline": timeline}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] and argv[0] in SUBCOMMANDS:
            return SUBCOMMANDS[argv[0]](argv[1:])
        if not argv and not raw_from_env(os.environ):
            # Run bare (no flags, no CYCLE_VMSS_* variables, as the pipeline template passes
            # them): what it does and how, rather than an error about one flag.
            build_parser().print_help()
            return 2
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
    """docs/cli.md's reference, generated from the settings table (a test keeps them equal)."""
    rows = ["| flag | environment variable | default | accepted | what it does |",
            "|---|---|---|---|---|"]
    for spec in SETTINGS:
        flag = f"`--{spec.cli}`" + (f", `-{spec.short}`" if spec.short else "")
        default = ("required" if spec.required
                   else f"`{spec.default}`" if spec.default not in (None, "") else "—")
        accepted = "`true` or `false`; the flag alone means `true`" if spec.boolean else spec.accepted
        rows.append(f"| {flag} | `{spec.env}` | {default} | {accepted} | {spec.help} |")
    return "\n".join(rows)
