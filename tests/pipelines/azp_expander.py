"""A small Azure Pipelines template expander: the `${{ }}` forms our template uses, and no more.

Azure Pipelines checks the given parameters against the template's typed declarations, then
replaces `${{ parameters.NAME }}` in the parsed YAML (never in its text, so a value cannot change
the document's structure), and at run time expands `$(Variable)` macros that name a known
variable, leaving any other `$(...)` as it is. Any other `${{ }}` form raises, so the tests fail
if the template grows a form this expander does not understand.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PARAMETER = re.compile(r"parameters\.([A-Za-z_][A-Za-z0-9_]*)")
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


def _evaluate(expression: str, parameters: Mapping[str, Any]) -> Any:
    match = PARAMETER.fullmatch(expression)
    if not match:
        raise TemplateError(f"expression not supported by the test expander: ${{{{ {expression} }}}}")
    return parameters[match.group(1)]


def _substitute(node: Any, parameters: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        for key in node:
            if isinstance(key, str) and EXPRESSION.search(key):
                raise TemplateError(f"conditional or loop keys are not supported: {key}")
        return {key: _substitute(value, parameters) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, parameters) for item in node]
    if isinstance(node, str):
        whole = EXPRESSION.fullmatch(node.strip())
        if whole:
            return _evaluate(whole.group(1), parameters)
        return EXPRESSION.sub(lambda m: as_text(_evaluate(m.group(1), parameters)), node)
    return node


def expand(template: Mapping[str, Any] | str | Path, given: Mapping[str, Any]) -> list[dict]:
    """The steps the template yields for `given` parameters."""
    if not isinstance(template, Mapping):
        template = load(template)
    parameters = resolve_parameters(template, given)
    return _substitute(template["steps"], parameters)


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
