"""A small Azure Pipelines template expander: the `${{ }}` forms our templates use, and no more.

Azure Pipelines checks the given parameters against the template's typed declarations, then
replaces `${{ parameters.NAME }}` (or `${{ item.FIELD }}` inside an `each`) in the parsed YAML
(never in its text, so a value cannot change the document's structure), keeps the branch of an
`${{ if eq(parameters.NAME, 'value') }}` / `${{ else }}` key pair that holds, repeats an
`${{ each item in parameters.NAME }}` list entry per item, and replaces a `template:` entry by
that template's expansion. At run time it expands `$(Variable)` macros that name a known
variable, leaving any other `$(...)` as it is. Any other `${{ }}` form raises, so the tests fail
if a template grows a form this expander does not understand.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
REFERENCE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
IF_EQ = re.compile(r"if eq\(([A-Za-z_][A-Za-z0-9_.]*), '([^']*)'\)")
EACH = re.compile(r"each ([A-Za-z_][A-Za-z0-9_]*) in ([A-Za-z_][A-Za-z0-9_.]*)")
BODIES = ("steps", "jobs", "stages")
MACRO = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.]*)\)")


class TemplateError(ValueError):
    """What Azure Pipelines would refuse when compiling the pipeline."""


def load(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _typed(declaration: Mapping[str, Any], value: Any) -> Any:
    name, kind = declaration["name"], declaration.get("type", "string")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise TemplateError(f"The '{name}' parameter value '{value}' is not a valid Boolean.")
    if kind == "number":
        if isinstance(value, bool):
            raise TemplateError(f"The '{name}' parameter value '{value}' is not a valid number.")
        if isinstance(value, (int, float)):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            raise TemplateError(f"The '{name}' parameter value '{value}' is not a valid number.") from None
        return int(number) if number.is_integer() else number
    if kind == "string":
        if isinstance(value, (dict, list)):
            raise TemplateError(f"The '{name}' parameter is not a valid String.")
        text = ("True" if value else "False") if isinstance(value, bool) else str(value)
        allowed = declaration.get("values")
        if allowed is not None and text not in [str(v) for v in allowed]:
            raise TemplateError(f"The '{name}' parameter value '{text}' is not a valid value.")
        return text
    if kind == "object":
        return value
    raise TemplateError(f"parameter type {kind!r} is not supported by this expander")


def resolve_parameters(template: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    declared = {d["name"]: d for d in template.get("parameters") or []}
    unexpected = sorted(set(given) - set(declared))
    if unexpected:
        raise TemplateError(f"Unexpected parameter '{unexpected[0]}'")
    values = {}
    for name, declaration in declared.items():
        if name in given:
            values[name] = _typed(declaration, given[name])
        elif "default" in declaration:
            values[name] = _typed(declaration, declaration["default"])
        else:
            raise TemplateError(f"A value for the '{name}' parameter must be provided.")
    return values


def as_text(value: Any) -> str:
    """How Azure Pipelines prints a typed value into a string: True/False, 30, 1.5."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _evaluate(expression: str, scope: Mapping[str, Any]) -> Any:
    """`parameters.NAME[.FIELD...]`, or `ITEM.FIELD` for the item of an enclosing `each`."""
    names = expression.split(".")
    if not REFERENCE.fullmatch(expression) or names[0] not in scope:
        raise TemplateError(f"expression not supported by the test expander: ${{{{ {expression} }}}}")
    value = scope[names[0]]
    for name in names[1:]:
        value = value[name]
    return value


def _condition(key: str) -> str | None:
    whole = EXPRESSION.fullmatch(key.strip())
    return whole.group(1) if whole else None


def _substitute(node: Any, scope: Mapping[str, Any], here: Path) -> Any:
    if isinstance(node, dict):
        return _mapping(node, scope, here)
    if isinstance(node, list):
        return _sequence(node, scope, here)
    if isinstance(node, str):
        whole = EXPRESSION.fullmatch(node.strip())
        if whole:
            return _evaluate(whole.group(1), scope)
        return EXPRESSION.sub(lambda m: as_text(_evaluate(m.group(1), scope)), node)
    return node


def _mapping(node: Mapping[str, Any], scope: Mapping[str, Any], here: Path) -> dict:
    result: dict = {}
    previous: bool | None = None  # whether the last `if` held, for the `else` after it
    for key, value in node.items():
        condition = _condition(key) if isinstance(key, str) else None
        if condition is None:
            result[key] = _substitute(value, scope, here)
            previous = None
            continue
        if condition == "else" and previous is not None:
            taken, previous = not previous, None
        elif match := IF_EQ.fullmatch(condition):
            taken = previous = as_text(_evaluate(match.group(1), scope)) == match.group(2)
        else:
            raise TemplateError(f"conditional key not supported by the test expander: {key}")
        if taken:
            result.update(_substitute(value, scope, here))
    return result


def _sequence(node: list, scope: Mapping[str, Any], here: Path) -> list:
    result = []
    for item in node:
        if isinstance(item, dict) and len(item) == 1:
            key, body = next(iter(item.items()))
            condition = _condition(key) if isinstance(key, str) else None
            if condition is not None:
                match = EACH.fullmatch(condition)
                if not match:
                    raise TemplateError(f"list key not supported by the test expander: {key}")
                for each in _evaluate(match.group(2), scope):
                    result += _sequence(body, {**scope, match.group(1): each}, here)
                continue
        if isinstance(item, dict) and "template" in item:
            result += _included(item, scope, here)
            continue
        result.append(_substitute(item, scope, here))
    return result


def _included(entry: Mapping[str, Any], scope: Mapping[str, Any], here: Path) -> list:
    """A `template:` entry: `path` beside the including file, `path@alias` from a resource
    repository (in these tests always this repository)."""
    path, _, alias = _substitute(entry["template"], scope, here).partition("@")
    base = Path(__file__).resolve().parents[2] if alias else here
    given = _substitute(entry.get("parameters") or {}, scope, here)
    return expand(base / path, given)


def expand(path: str | Path, given: Mapping[str, Any]) -> list[dict]:
    """The steps, jobs or stages the template at `path` yields for `given` parameters."""
    template = load(path)
    parameters = resolve_parameters(template, given)
    body = next(key for key in BODIES if key in template)
    return _substitute(template[body], {"parameters": parameters}, Path(path).parent)


def expand_pipeline(path: str | Path) -> dict:
    """A whole pipeline: its own parameters at their defaults, templates replaced."""
    pipeline = load(path)
    parameters = resolve_parameters(pipeline, {})
    scope = {"parameters": parameters}
    return {key: _substitute(value, scope, Path(path).parent) if key in BODIES else value
            for key, value in pipeline.items()}


def macros(text: str, variables: Mapping[str, str]) -> str:
    """Run-time `$(Name)` expansion: known variables (case-insensitive) only, in one pass."""
    known = {k.lower(): v for k, v in variables.items()}
    return MACRO.sub(lambda m: known.get(m.group(1).lower(), m.group(0)), text)


def task_step(steps: list[dict], task: str) -> dict:
    found = [s for s in steps if s.get("task") == task]
    if len(found) != 1:
        raise TemplateError(f"expected one {task} step, found {len(found)}")
    return found[0]


def step_env(step: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    """The `env:` mapping as the agent exports it: every value a string, macros expanded."""
    return {name: macros(as_text(value), variables) for name, value in (step.get("env") or {}).items()}
