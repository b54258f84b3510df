"""The jobs' shared edge: argv, YAML files and `a.b=value` overrides in, a validated typed config out, and
the one error path every job takes for bad input.

A mistake in what the user gave (an unknown key, a wrong type, a value out of range, an override without
`=`, a missing or broken --config file, a bad flag) is a ConfigError: one line that names the key and the
problem, printed as `<job>: <problem>` on stderr, exit status 2, no traceback. Values are never echoed:
a rejected value may be a secret."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., int])
BAD_INPUT = 2  # exit status for anything the user has to fix in what they gave

# pydantic's wording, as the user reads it
_MESSAGES = {"extra_forbidden": "unknown key", "missing": "required, not given"}


class ConfigError(ValueError):
    """Bad input from the user: its message is one line naming the key (or flag, or file) and the problem."""


class JobParser(argparse.ArgumentParser):
    """argparse whose errors (a bad flag value, an unknown flag, a missing required one) are ConfigErrors,
    so they take the jobs' one error path instead of printing the usage and exiting on their own."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see --help)")


def read_yaml(path: str) -> dict[str, Any]:
    """A --config file as a mapping; a missing file, a YAML syntax error or a non-mapping is a ConfigError."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"--config {path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of keys, got a {type(data).__name__}")
    return data


def override_value(key: str, raw: str) -> Any:
    """An override's value: YAML when YAML reads something other than a string (8 -> int, true -> bool,
    null, [a, b]); otherwise the text exactly as typed, so `#` starts no comment and `a: b` is no mapping
    (`dest=/exp #4` keeps ` #4`). Quote a value ('8') to force a string."""
    if not raw:
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    text = raw.lstrip()
    if isinstance(value, str) and not text.startswith(("'", '"')):
        return raw
    if isinstance(value, dict) and not text.startswith("{"):  # `a: b` is text; `{a: 1}` a mapping
        return raw
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=value` pairs onto a copy of a nested dict (values: override_value)."""
    data = yaml.safe_load(yaml.safe_dump(data)) or {}  # deep copy
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item.split('=')[0]!r} is not of the form key=value")
        set_key(data, key, override_value(key, raw))
    return data


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """data[a][b] = value for key "a.b", making sections on the way; a non-section on the way is an error."""
    node = data
    *parents, leaf = key.split(".")
    for i, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {'.'.join(parents[: i + 1])!r} is not a section")
    node[leaf] = value


def validate(model: type[M], data: Any) -> M:
    """`data` as a `model`; every problem named by its key, in one line, without the values."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {_MESSAGES.get(e['type'], e['msg'])}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid config: {problems}") from None


def load_typed_config(
    model: type[M],
    path: str | None,
    overrides: list[str],
    default: dict[str, Any],
    flags: dict[str, str | None] | None = None,
) -> M:
    """A --config file (or `default`), then `flags` (values taken as given: flags are strings, not YAML;
    None means not given), then overrides -> a validated `model`."""
    data = read_yaml(path) if path else default
    data = apply_overrides(data, [])
    for key, value in (flags or {}).items():
        if value is not None:
            set_key(data, key, value)
    return validate(model, apply_overrides(data, overrides))


def job_main(job: str) -> Callable[[F], F]:
    """Decorates a job's main(argv) -> exit status: a ConfigError anywhere in it becomes one line on
    stderr (`<job>: <problem>`) and exit status 2."""

    def wrap(main: F) -> F:
        @functools.wraps(main)
        def run(*args: Any, **kwargs: Any) -> int:
            try:
                return main(*args, **kwargs)
            except ConfigError as exc:
                print(f"{job}: {exc}", file=sys.stderr)
                return BAD_INPUT

        return cast(F, run)

    return wrap
