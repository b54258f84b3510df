"""The pages dataset: one row per page, one explicit schema. Every writer and reader uses PAGES_SCHEMA."""

from __future__ import annotations

from typing import Any

import pyarrow as pa


def _required(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


def _list_of(type_: pa.DataType) -> pa.DataType:
    return pa.list_(_required("item", type_))


# One layout block of a page (pipeline/stages/structure.py fills them; docs/structured_pages.md defines the
# frames). A box is 4 numbers (x0, y0, x1, y1), or empty when the model gave the block none.
BLOCK_TYPE = pa.struct(
    [
        _required("order", pa.int32()),  # index in the page's blocks, reading order as the model wrote them
        _required("label", pa.string()),  # the model's label (title, text, table, equation, image, ...)
        _required(
            "kind", pa.string()
        ),  # heading | text | table | formula | figure | caption | footnote | other
        _required("text", pa.string()),  # the block's Markdown, without tags
        _required("box_model", _list_of(pa.int32())),  # 0-999 over the page, as the model wrote it
        _required(
            "box_px", _list_of(pa.float64())
        ),  # pixels of the rendered page image (width_px x height_px)
        _required("box_pt", _list_of(pa.float64())),  # PDF points of the page (PyMuPDF page.rect, y down)
        _required("figure", pa.string()),  # key of the cropped figure under the output root; '' if none
    ]
)

# (name, type, meaning). Strings are never null: "" means "not applicable" (nullable strings turn into
# NaN inside pandas batches and break the Parquet schema).
_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("run_id", pa.string(), "run that produced the row"),
    ("doc_id", pa.string(), "stable id of the source document (hash of its URI)"),
    ("source_uri", pa.string(), "where the document was read from, credentials and query strings removed"),
    ("content_hash", pa.string(), "etag or content hash of the document when listed"),
    ("page_index", pa.int32(), "0-based page number; -1 for a document-level error row"),
    ("page_count", pa.int32(), "pages in the document; -1 when it could not be opened"),
    (
        "width_pt",
        pa.float64(),
        "page width in PDF points (PyMuPDF page.rect, /Rotate applied); 0 if not rendered",
    ),
    ("height_pt", pa.float64(), "page height in PDF points; 0 if not rendered"),
    ("status", pa.string(), "ok | error"),
    ("error_stage", pa.string(), "list | read | render | ocr; '' when ok"),
    ("error", pa.string(), "why the page failed; '' when ok"),
    ("text", pa.string(), "OCR output (markdown); '' on error"),
    (
        "finish_reason",
        pa.string(),
        "eos | length | repetition (of the attempt whose text was kept; of the last "
        "attempt when the text layer was taken); '' on error and for pages routed to their text layer",
    ),
    (
        "text_source",
        pa.string(),
        "ocr | ocr_retry | text_layer (the page policy's fallback) | text_layer_routed (the router took the "
        "page's text layer as Markdown, no OCR): where `text` came from; '' on error",
    ),
    (
        "route",
        pa.string(),
        "ocr | text_layer: where the router sent the page (docs/routing.md); '' when the document never "
        "reached a decision (list, read or open errors)",
    ),
    ("route_reason", pa.string(), "the routing rule that decided (ocr_mode when routing is off)"),
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
    (
        "markdown",
        pa.string(),
        "the page's clean Markdown: grounding tags removed, figures linked by their key; the text as it "
        "came when it holds no layout; '' on error",
    ),
    ("blocks", pa.list_(_required("item", BLOCK_TYPE)), "the page's layout blocks in order; [] if none"),
    ("layout_parsed", pa.bool_(), "the text was read as a layout with at least one located block"),
    ("layout_truncated", pa.bool_(), "the last block was cut (token cap, or the text stops inside it)"),
    (
        "layout_flags",
        pa.string(),
        "comma-separated: stripped (tags decoded away), looped, clamped (a box outside 0-999), malformed "
        "(broken tags), repeated (blocks repeated without a box of their own); '' when none",
    ),
    ("n_tables", pa.int32(), "table blocks on the page"),
    ("n_formulas", pa.int32(), "formula (equation) blocks on the page"),
    ("n_figures", pa.int32(), "figure (image) blocks on the page"),
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
    (
        "route_s",
        pa.float64(),
        "seconds the render child spent reading the page's text layer, its features and Markdown (within "
        "render_s); 0 when routing is off",
    ),
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

# The router's page features (pipeline/stages/page_features.py PageFeatures, one column each, prefixed
# feat_): 0 when routing is off or the page's layer could not be read. Shares are of the page's characters
# (or words); docs/routing.md says why each one.
_FEATURES: list[tuple[str, pa.DataType, str]] = [
    ("width_pt", pa.float64(), "page width in points"),
    ("height_pt", pa.float64(), "page height in points"),
    ("rotation", pa.int32(), "the page's /Rotate"),
    ("chars", pa.int32(), "non-whitespace characters in the text layer, visible or not"),
    ("lines", pa.int32(), "text lines"),
    ("words", pa.int32(), "words holding a letter"),
    ("chars_per_kpt2", pa.float64(), "characters per 1000 square points"),
    ("letter_share", pa.float64(), "share of letters"),
    ("unmapped_share", pa.float64(), "share of glyphs with no Unicode mapping"),
    ("invisible_share", pa.float64(), "share of invisible characters (a scanner's OCR layer)"),
    ("symbol_share", pa.float64(), "share of symbols"),
    ("single_letter_word_share", pa.float64(), "share of one-letter words"),
    ("mixed_script_word_share", pa.float64(), "share of words mixing alphabets"),
    ("odd_word_share", pa.float64(), "share of words mixing letters with digits or symbols"),
    ("mean_word_letters", pa.float64(), "letters per word"),
    ("words_per_line", pa.float64(), "words per line"),
    ("rotated_text_share", pa.float64(), "share of characters on lines not running left to right"),
    ("images", pa.int32(), "images on the page"),
    ("image_cover", pa.float64(), "share of the page's area under images"),
    ("vector_paths", pa.int32(), "vector paths"),
    ("glyph_paths", pa.int32(), "small filled non-rectangular paths: text drawn as outlines"),
]
FEATURE_PREFIX = "feat_"
FEATURE_COLUMNS = [FEATURE_PREFIX + n for n, _, _ in _FEATURES]
_COLUMNS += [(FEATURE_PREFIX + n, t, "router feature: " + d) for n, t, d in _FEATURES]

# Per-page counts of the layout's blocks (the run summary and the cost report sum them).
STRUCTURE_COUNTS = ("n_tables", "n_formulas", "n_figures")
_COLUMNS += _QUALITY_COLUMNS
PAGES_SCHEMA = pa.schema([pa.field(n, t, nullable=False, metadata={"doc": d}) for n, t, d in _COLUMNS])
COLUMN_NAMES = [n for n, _, _ in _COLUMNS]
QUALITY_COLUMN_NAMES = [n for n, _, _ in _QUALITY_COLUMNS]


def conform(table: pa.Table) -> pa.Table:
    """A pages table written by an older version -> PAGES_SCHEMA: columns added since get the values the
    old rows meant (their text came from one OCR attempt, nothing was flagged, every page that reached OCR
    was sent there because routing did not exist: route "ocr", reason "ocr_mode"; no features were read; no
    layout was read: their Markdown is their text; no quality was assessed: 0 / '' / False, as on an error
    row); columns no longer in the schema are dropped. A column of the wrong type still fails the cast: that
    is not an old file."""
    import pyarrow.compute as pc

    ok = pc.equal(table["status"], "ok")
    reached_ocr = pc.or_(ok, pc.equal(table["error_stage"], "ocr"))
    n = table.num_rows
    filled: dict[str, Any] = {
        "text_source": pc.if_else(ok, "ocr", ""),
        "ocr_attempts": pc.cast(reached_ocr, pa.int32()),
        "doc_flagged": pa.array([False] * n, pa.bool_()),
        "route": pc.if_else(reached_ocr, "ocr", ""),
        "route_reason": pc.if_else(reached_ocr, "ocr_mode", ""),
        "route_s": pa.array([0.0] * n, pa.float64()),
        "width_pt": pa.array([0.0] * n, pa.float64()),
        "height_pt": pa.array([0.0] * n, pa.float64()),
        "markdown": table["text"],
        "blocks": pa.array([[]] * n, PAGES_SCHEMA.field("blocks").type),
        "layout_parsed": pa.array([False] * n, pa.bool_()),
        "layout_truncated": pa.array([False] * n, pa.bool_()),
        "layout_flags": pa.array([""] * n, pa.string()),
        **{name: pa.array([0] * n, pa.int32()) for name in STRUCTURE_COUNTS},
    }
    for name in FEATURE_COLUMNS:
        filled[name] = pa.array([0] * n, PAGES_SCHEMA.field(name).type)
    for name in QUALITY_COLUMN_NAMES:
        field = PAGES_SCHEMA.field(name)
        default = "" if pa.types.is_string(field.type) else False if pa.types.is_boolean(field.type) else 0
        filled[name] = pa.array([default] * n, field.type)
    columns = [table[name] if name in table.column_names else filled[name] for name in COLUMN_NAMES]
    return pa.Table.from_arrays(columns, schema=PAGES_SCHEMA)
