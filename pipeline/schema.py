"""The pages dataset: one row per page, one explicit schema. Every writer and reader uses PAGES_SCHEMA."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

# (name, type, meaning). Strings are never null: "" means "not applicable" (nullable strings turn into
# NaN inside pandas batches and break the Parquet schema).
_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("run_id", pa.string(), "run that produced the row"),
    ("doc_id", pa.string(), "stable id of the source document (hash of its URI)"),
    ("source_uri", pa.string(), "where the document was read from, credentials and query strings removed"),
    ("content_hash", pa.string(), "etag or content hash of the document when listed"),
    ("page_index", pa.int32(), "0-based page number; -1 for a document-level error row"),
    ("page_count", pa.int32(), "pages in the document; -1 when it could not be opened"),
    ("status", pa.string(), "ok | error"),
    ("error_stage", pa.string(), "list | read | render | ocr; '' when ok"),
    ("error", pa.string(), "why the page failed; '' when ok"),
    ("text", pa.string(), "OCR output (markdown); '' on error"),
    (
        "finish_reason",
        pa.string(),
        "eos | length | repetition (of the attempt whose text was kept; of the last "
        "attempt when the text layer was taken); '' on error",
    ),
    ("text_source", pa.string(), "ocr | ocr_retry | text_layer: where `text` came from; '' on error"),
    (
        "ocr_attempts",
        pa.int32(),
        "OCR attempts made for the page (retries included); 0 if it never reached OCR",
    ),
    (
        "doc_flagged",
        pa.bool_(),
        "the document's share of failed or fallen-back pages exceeds the page policy's flag_document_share",
    ),
    ("model_id", pa.string(), "checkpoint used"),
    ("model_mode", pa.string(), "resolution mode (v1) or 'dynamic' (v2)"),
    ("prune_method", pa.string(), "pruning method"),
    ("prune_config_hash", pa.string(), "hash of the full pruning config"),
    ("visual_tokens", pa.int32(), "visual tokens before pruning (usage columns sum every OCR attempt)"),
    ("visual_tokens_kept", pa.int32(), "visual tokens the language model saw"),
    ("prompt_tokens", pa.int32(), "prompt length after pruning"),
    ("output_tokens", pa.int32(), "generated tokens"),
    ("render_s", pa.float64(), "CPU seconds rasterizing this page (document time shared by pages)"),
    ("encode_s", pa.float64(), "GPU seconds in the vision encoder (batch share)"),
    ("prune_s", pa.float64(), "GPU seconds pruning (batch share)"),
    ("prefill_s", pa.float64(), "GPU seconds of LM prefill (batch share)"),
    ("decode_s", pa.float64(), "GPU seconds of decoding (batch share)"),
    ("gpu_s", pa.float64(), "encode + prune + prefill + decode"),
    ("cpu_s", pa.float64(), "CPU busy seconds charged to the page (render)"),
    ("cost_direct_usd", pa.float64(), "gpu_s x gpu_usd_per_s + cpu_s x cpu_usd_per_s"),
    ("pricing_name", pa.string(), "pricing table the cost was computed with"),
    ("gpu_node_type", pa.string(), "node type whose GPU rate was used"),
    ("gpu_usd_per_s", pa.float64(), "GPU-second rate used"),
    ("cpu_usd_per_s", pa.float64(), "CPU-second rate used"),
]
# Quality (pipeline/stages/quality.py, docs/quality.md): signals of the final text, the decoder's confidence
# in the kept attempt, whether anything speaks against the page, and adaptive pruning's re-read. Error rows
# keep 0 / '' / False.
_QUALITY_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("characters", pa.int32(), "non-space characters of the readable text (grounding boxes, tags removed)"),
    ("letter_share", pa.float64(), "letters / characters"),
    ("digit_share", pa.float64(), "digits / characters"),
    ("repeated_ngram_share", pa.float64(), "share of words that repeat an earlier word n-gram of the page"),
    ("language", pa.string(), "ISO 639-1 code (639-3 without one); '' when too short or unsure"),
    ("language_probability", pa.float64(), "probability of the best language guess; 0 when not read"),
    ("script", pa.string(), "script of most letters (Latin, Cyrillic, Han, Japanese...); '' without letters"),
    (
        "scored_tokens",
        pa.int32(),
        "output tokens of the kept attempt with a log-probability; 0: no confidence (text layer, not collected)",
    ),
    ("mean_logprob", pa.float64(), "mean natural-log probability of those tokens; 0 when none"),
    ("min_logprob", pa.float64(), "lowest of them; 0 when none"),
    ("low_probability_share", pa.float64(), "share of them chosen with a probability under the threshold"),
    ("suspect", pa.bool_(), "some quality check speaks against the page (suspect_reasons says which)"),
    (
        "suspect_reasons",
        pa.string(),
        "comma-separated, in pipeline.stages.quality.REASONS order; '' when not suspect",
    ),
    (
        "adaptive_rerun",
        pa.string(),
        "adaptive pruning re-read the page unpruned: 'kept_unpruned' | 'kept_pruned' (which attempt's "
        "text stayed); '' when not re-read",
    ),
    ("adaptive_rerun_gpu_s", pa.float64(), "GPU seconds of that unpruned re-read (inside gpu_s)"),
]

_COLUMNS += _QUALITY_COLUMNS
PAGES_SCHEMA = pa.schema([pa.field(n, t, nullable=False, metadata={"doc": d}) for n, t, d in _COLUMNS])
COLUMN_NAMES = [n for n, _, _ in _COLUMNS]
QUALITY_COLUMN_NAMES = [n for n, _, _ in _QUALITY_COLUMNS]


def conform(table: pa.Table) -> pa.Table:
    """A pages table written by an older version -> PAGES_SCHEMA: columns added since get the values the
    old rows meant (their text came from one OCR attempt, nothing was flagged, no quality was assessed:
    0 / '' / False, as on an error row); columns no longer in the schema are dropped. A column of the wrong
    type still fails the cast: that is not an old file."""
    import pyarrow.compute as pc

    ok = pc.equal(table["status"], "ok")
    reached_ocr = pc.or_(ok, pc.equal(table["error_stage"], "ocr"))
    filled: dict[str, Any] = {
        "text_source": pc.if_else(ok, "ocr", ""),
        "ocr_attempts": pc.cast(reached_ocr, pa.int32()),
        "doc_flagged": pa.array([False] * table.num_rows, pa.bool_()),
    }

    for name in QUALITY_COLUMN_NAMES:
        field = PAGES_SCHEMA.field(name)
        default = "" if pa.types.is_string(field.type) else False if pa.types.is_boolean(field.type) else 0
        filled[name] = pa.array([default] * table.num_rows, field.type)
    columns = [table[name] if name in table.column_names else filled[name] for name in COLUMN_NAMES]
    return pa.Table.from_arrays(columns, schema=PAGES_SCHEMA)
