"""The project's version pins, read from pyproject.toml: the one place they are written.

Exact requirements live in pyproject.toml's dependency lists (transformers, ray, the vllm extra, the test
extra's boto3 window); versions that no requirement spells out exactly (the CPU torch wheel, uv) live in its
`[tool.rtprune-ocr.pins]` table. The installers read them here instead of repeating them:

    python3 tools/pins.py requirement transformers   ->  transformers==5.23.0
    python3 tools/pins.py version torch              ->  2.13.0

Standard library only, any Python >= 3.8 (tools/bootstrap.py imports it before any environment exists)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _text(pyproject: Path | None) -> str:
    return (pyproject or PYPROJECT).read_text(encoding="utf-8")


def requirement(name: str, pyproject: Path | None = None) -> str:
    """The requirement string pyproject.toml gives `name` (extras dropped), e.g. "transformers==5.23.0"."""
    quoted = re.compile(r'"(' + re.escape(name) + r')(?:\[[^\]]*\])?\s*((?:==|>=|<=|~=|<|>)[^"]*)"')
    match = quoted.search(_text(pyproject))
    if match is None:
        raise KeyError(f"pyproject.toml has no requirement for {name!r}")
    return match.group(1) + match.group(2).replace(" ", "")


def version(name: str, pyproject: Path | None = None) -> str:
    """An exact version: `[tool.rtprune-ocr.pins]` first, else the `==` requirement of `name`."""
    text = _text(pyproject)
    table = re.search(r"^\[tool\.rtprune-ocr\.pins\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if table:
        found = re.search(r"^\s*" + re.escape(name) + r'\s*=\s*"([^"]+)"', table.group(1), re.M)
        if found:
            return found.group(1)
    req = requirement(name, pyproject)
    if not req.startswith(name + "=="):
        raise KeyError(f"pyproject.toml pins no exact version of {name!r} (it says {req!r})")
    return req[len(name) + 2 :]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("requirement", "version"):
        print("usage: pins.py requirement|version NAME", file=sys.stderr)
        return 2
    try:
        print((requirement if argv[0] == "requirement" else version)(argv[1]))
    except KeyError as exc:
        print(f"pins.py: {exc.args[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
