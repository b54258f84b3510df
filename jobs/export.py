"""Export committed pages as documents: python -m jobs.export [--config export.yaml] [a.b=value ...]

Writes one Markdown file per document and JSONL shards (one record per document) for LLM data pipelines,
from what the digitize job committed; only documents new or changed since the last export are written.
With no arguments it exports the embedded default job's output (./out) to ./out/export. This module is
the only place that reads argv."""

from __future__ import annotations

import sys
from typing import Any

from jobs.cli import JobParser, job_main, load_typed_config
from pipeline.export import ExportConfig, ExportResult, run_export
from pipeline.redact import describe_error, redact_uri

EMBEDDED_DEFAULT: dict[str, Any] = {"output": "out", "dest": "out/export"}


def load_config(
    path: str | None, overrides: list[str], flags: dict[str, str | None] | None = None
) -> ExportConfig:
    """The export job's config: a YAML file (or the embedded default), then the --output/--dest flags (taken
    as typed), then overrides."""
    return load_typed_config(ExportConfig, path, overrides, EMBEDDED_DEFAULT, flags)


def describe(result: ExportResult, dest: str) -> str:
    if not result.export_id:
        return f"nothing new to export: {result.unchanged} documents already exported in their latest version"
    return (
        f"{result.export_id}: {result.documents} documents ({result.new} new, {result.changed} changed, "
        f"{result.unchanged} unchanged), {result.pages_ok} pages ok, {result.pages_failed} failed\n"
        f"jsonl: {len(result.shards)} shard(s) in {dest}/jsonl/{result.export_id}/; "
        f"markdown: {result.markdown_files} file(s) in {dest}/markdown/ with {result.viewer_files} viewer(s) "
        f"and {result.figure_files} figure(s), {result.page_image_files} page image(s); "
        f"manifest: {dest}/_export/{result.export_id}.json"
    )


@job_main("export")
def main(argv: list[str] | None = None) -> int:
    parser = JobParser(prog="python -m jobs.export", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="export YAML (default: ./out exported to ./out/export)")
    parser.add_argument("--output", help="the digitize job's output URI (same as output=...)")
    parser.add_argument("--dest", help="where the export goes (same as dest=...)")
    parser.add_argument("overrides", nargs="*", help="a.b=value (YAML scalar), e.g. storage.endpoint_url=...")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides, {"output": args.output, "dest": args.dest})
    try:
        result = run_export(cfg)
    except Exception as exc:  # fatal: credentials, a missing bucket, a file name collision
        print(f"export: stopped: {describe_error(exc, cfg.storage.secrets())}", file=sys.stderr)
        return 2
    print(describe(result, redact_uri(cfg.dest).rstrip("/")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
