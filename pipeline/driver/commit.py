"""Driver-side streaming commit: collect each document's rows as they arrive, commit complete documents
in parts (their figures, the part file, then the ledger record), and keep the slim totals the run summary
needs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.cost.accounting import price_pages
from pipeline.cost.pricing import Pricing
from pipeline.stages.figures import attach_figures
from pipeline.stages.page_policy import flag_document
from pipeline.stages.rows import FIGURE_FIELDS, FIGURES_PNG
from pipeline.store.output import Output, commit_part

log = logging.getLogger("pipeline")

SUMMARY_COLUMNS = [
    "doc_id",
    "status",
    "cost_direct_usd",
    "visual_tokens",
    "visual_tokens_kept",
    "gpu_s",
    "cpu_s",
    "model_id",
    "model_mode",
    "prune_method",
    "prune_config_hash",
    "text_source",
    "ocr_attempts",
    "doc_flagged",
    "route",
    "layout_parsed",
    "n_tables",
    "n_formulas",
    "n_figures",
    "suspect",
    "adaptive_rerun",
    "adaptive_rerun_gpu_s",
    "gpu_usd_per_s",
]


def expected_rows(table: pa.Table) -> int:
    """Rows a document produces: one for a document-level error (page_index -1), else one per page."""
    if pc.any(pc.equal(table["page_index"], -1)).as_py():
        return 1
    return int(table["page_count"][0].as_py())


@dataclass
class CommitStats:
    parts: int = 0
    documents: int = 0
    pages_ok: int = 0
    pages_failed: int = 0
    slim: list[pa.Table] = field(default_factory=list)  # committed rows without text, for the summary


def with_figure_column(batch: pa.Table) -> pa.Table:
    """A batch with the figures column (empty where a stage made none), so a document's batches concatenate."""
    if FIGURES_PNG in batch.column_names:
        return batch
    return batch.append_column(FIGURE_FIELDS[0], pa.array([[]] * batch.num_rows, FIGURE_FIELDS[0].type))


class Committer:
    """Feed it output batches; it commits the complete documents it holds once they reach
    `commit_documents` documents, `part_target_rows` rows or `part_target_bytes` bytes (0 = no such
    limit), or after `commit_interval_s` with anything complete; the rest on finish()."""

    def __init__(
        self,
        out: Output,
        run_id: str,
        engine_config_hash: str,
        pricing: Pricing,
        commit_documents: int,
        commit_interval_s: float,
        first_seq: int,
        flag_document_share: float = 1.0,
        part_target_rows: int = 0,
        part_target_bytes: int = 0,
    ) -> None:
        self._out, self._run_id, self._hash, self._pricing = out, run_id, engine_config_hash, pricing
        self._commit_documents, self._interval_s = commit_documents, commit_interval_s
        self._target_rows, self._target_bytes = part_target_rows, part_target_bytes
        self._seq = first_seq
        self._flag_share = flag_document_share  # documents are whole only here: flag them here
        self._partial: dict[str, list[pa.Table]] = {}
        self._complete: list[pa.Table] = []
        self._last_commit = time.monotonic()
        self.stats = CommitStats()
        self.documents_complete = 0  # committed or about to be: what the progress display counts as done

    def add(self, batch: pa.Table) -> None:
        batch = with_figure_column(batch)
        for doc_id in pc.unique(batch["doc_id"]).to_pylist():
            parts = self._partial.setdefault(doc_id, [])
            parts.append(batch.filter(pc.equal(batch["doc_id"], doc_id)))
            if sum(p.num_rows for p in parts) >= min(expected_rows(p) for p in parts):
                del self._partial[doc_id]
                self.documents_complete += 1
                self._complete.append(
                    flag_document(pa.concat_tables(parts).sort_by("page_index"), self._flag_share)
                )
        if self._complete and (self._part_full() or time.monotonic() - self._last_commit >= self._interval_s):
            self._commit()

    def _part_full(self) -> bool:
        if self._commit_documents and len(self._complete) >= self._commit_documents:
            return True
        if self._target_rows and sum(t.num_rows for t in self._complete) >= self._target_rows:
            return True
        return bool(self._target_bytes) and sum(t.nbytes for t in self._complete) >= self._target_bytes

    def finish(self) -> None:
        if self._complete:
            self._commit()
        if self._partial:  # a stage lost rows: never commit a partial document; the next run redoes it
            raise RuntimeError(
                f"{len(self._partial)} documents ended incomplete: " + ", ".join(sorted(self._partial)[:5])
            )

    def _commit(self) -> None:
        priced = price_pages(pa.concat_tables(self._complete), self._pricing)
        table, figures = attach_figures(priced, self._run_id, self._seq)
        docs = [
            {
                "doc_id": t["doc_id"][0].as_py(),
                "content_hash": t["content_hash"][0].as_py(),
                "source_uri": t["source_uri"][0].as_py(),
                "ok": bool(pc.all(pc.equal(t["status"], "ok")).as_py()),
            }
            for t in self._complete
        ]
        commit_part(self._out, self._run_id, self._seq, table, docs, self._hash, figures)
        ok = int(pc.sum(pc.equal(table["status"], "ok")).as_py() or 0)
        s = self.stats
        s.parts, s.documents = s.parts + 1, s.documents + len(docs)
        s.pages_ok, s.pages_failed = s.pages_ok + ok, s.pages_failed + table.num_rows - ok
        s.slim.append(table.select(SUMMARY_COLUMNS))
        log.info(
            "committed part %06d: %d documents, %d rows, %d figures (run total: %d documents, %d pages ok, "
            "%d failed)",
            self._seq,
            len(docs),
            table.num_rows,
            len(figures),
            s.documents,
            s.pages_ok,
            s.pages_failed,
        )
        self._seq += 1
        self._complete = []
        self._last_commit = time.monotonic()
