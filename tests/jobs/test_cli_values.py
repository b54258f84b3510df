"""How the jobs' edge reads values: flags are strings as typed; override values are YAML unless YAML would
read them as a string, then the text as typed (a `#` is no comment)."""

from __future__ import annotations

import pytest

from jobs.cli import apply_overrides, load_typed_config
from jobs.export import load_config
from pipeline.export import ExportConfig


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("8", 8),
        ("0.5", 0.5),
        ("true", True),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ("{a: 1}", {"a": 1}),
        ("'8'", "8"),
        ("/path/exp #4", "/path/exp #4"),
        ("s3://b/x: y", "s3://b/x: y"),
        ("[unclosed", "[unclosed"),
        ("", ""),
    ],
)
def test_override_values(raw, value):
    assert apply_overrides({}, [f"a.b={raw}"]) == {"a": {"b": value}}


def test_flags_are_strings_and_overrides_win():
    cfg = load_config(None, [], {"output": "/in #1", "dest": "/path/exp #4"})
    assert (cfg.output, cfg.dest) == ("/in #1", "/path/exp #4")
    cfg = load_typed_config(ExportConfig, None, ["dest=/other"], {"output": "o"}, {"dest": "/path/exp #4"})
    assert cfg.dest == "/other"
    cfg = load_config(None, [], {"output": "8", "dest": "true"})  # YAML would make these an int and a bool
    assert (cfg.output, cfg.dest) == ("8", "true")
