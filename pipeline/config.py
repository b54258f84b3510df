"""PipelineConfig: everything one digitize run needs, typed and validated once at the edge (jobs/)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from pipeline.redact import has_userinfo
from pipeline.routing_config import RoutingConfig
from rtprune.engines.contract import EngineConfig
from rtprune.engines.vllm.settings import VllmSettings

# hide_input_in_errors: a validation error never repeats the value it refused (it may be a secret).
_FROZEN = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
# A run id names folders and files under the output: one path segment that is neither "." nor "..",
# nor hidden, nor an option-like "-x", and free of control characters.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def default_run_id() -> str:
    """Sortable by start time, unique across concurrent launches."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def uri_without_credentials(value: str) -> str:
    """A field validator for URIs the jobs read or write: credentials in one (user:password@) are refused
    with where they belong; URIs are logged and shown, the storage section's secrets never are."""
    if has_userinfo(value):
        raise ValueError(
            "the URI holds credentials (user:password@); remove them and give them in the environment "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, an AWS profile or role) or in the job file's "
            "storage section (storage.key, storage.secret), never in a URI, which is logged"
        )
    return value


class StorageConfig(BaseModel):
    """Object-store settings, passed to s3fs in the driver and to every Ray worker through the config
    (never through logs or environment dumps). Empty fields fall back to s3fs's own defaults (AWS env)."""

    model_config = _FROZEN

    endpoint_url: str = ""  # S3-compatible server (MinIO, moto, R2...); "" = AWS
    region: str = ""
    key: SecretStr | None = None
    secret: SecretStr | None = None
    anonymous: bool = False  # public buckets: skips signing, fails on private objects
    # Local inputs: a symbolic link in the input folder is read (as its target) only when the target lies
    # inside the input folder. True follows links anywhere: convenient for a folder of links into a
    # shared store, but whoever can write into the input folder can then make the job read (and OCR into
    # the output) any file the job's user can read.
    follow_links_outside_input: bool = False
    # A stalled store must fail a call (and let the retry helper or an error row take over) instead of
    # hanging a worker: shorter timeouts fail faster on a slow link, longer ones ride out brief stalls.
    # botocore retries each attempt on its own and s3fs retries around it, so a call can take several
    # times read_timeout_s before it fails.
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0)
    # botocore's attempts per call (throttling, 5xx, timeouts; with backoff) and s3fs's loop around them
    # (set on the filesystem by pipeline.store.fs.filesystem: s3fs takes it as an attribute, not an option).
    attempts: int = Field(default=5, ge=1)
    s3fs_retries: int = Field(default=2, ge=1)

    def secrets(self) -> list[str]:
        """Values that must never appear in any output; the redaction helper scrubs them."""
        return [
            s.get_secret_value() for s in (self.key, self.secret) if s is not None and s.get_secret_value()
        ]

    def fsspec_options(self) -> dict[str, Any]:
        """Keyword arguments for fsspec.filesystem/url_to_fs for an s3:// URI."""
        opts: dict[str, Any] = {"anon": self.anonymous}
        if self.key is not None:
            opts["key"] = self.key.get_secret_value()
        if self.secret is not None:
            opts["secret"] = self.secret.get_secret_value()
        opts["config_kwargs"] = {
            "connect_timeout": self.connect_timeout_s,
            "read_timeout": self.read_timeout_s,
            "retries": {"max_attempts": self.attempts, "mode": "standard"},
        }
        client: dict[str, Any] = {}
        if self.endpoint_url:
            client["endpoint_url"] = self.endpoint_url
        if self.region:
            client["region_name"] = self.region
        if client:
            opts["client_kwargs"] = client
        return opts


class RenderConfig(BaseModel):
    """Rasterization and the caps that keep one bad document from stalling or exhausting a worker."""

    model_config = _FROZEN

    # 144 dpi is DeepSeek-OCR's own PDF setting; higher reads small print better, costs CPU and memory,
    # and the model resizes to its mode's view anyway.
    dpi: int = Field(default=144, ge=36, le=600)
    # Hard wall-clock limit for one whole document; the render process is killed past it. Too low fails
    # long legitimate documents, too high lets a pathological file hold an actor.
    timeout_s: float = Field(default=120.0, gt=0)
    # Larger documents are refused with an error row (no read at all): bounds memory per actor.
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    # Wall-clock limit for reading one document's bytes, retries included: a stalled store or a file that
    # blocks becomes that document's read error instead of holding the render actor. Too low fails large
    # documents on a slow link (max_bytes at the link's speed must fit); too high lets a stall hold an
    # actor that long (the abandoned read ends when its connection drops).
    document_read_timeout_s: float = Field(default=300.0, gt=0)
    # Longer documents are refused with an error row: bounds the rows one task can produce.
    max_pages: int = Field(default=2000, ge=1)
    # A page whose raster at `dpi` would exceed this is rendered at a lower dpi so it fits (not failed):
    # posters and scanned plans still get text, at the model's resolution anyway.
    max_pixels_per_page: int = Field(default=4096 * 4096, ge=64 * 64)
    # "png": compressed, small object-store traffic between stages; "raw": RGB bytes, no encode/decode CPU.
    page_format: str = Field(default="png", pattern="^(png|raw)$")
    # Data-segment limit (RLIMIT_DATA) of the render child, whole process included (its baseline with
    # Python and PyMuPDF is ~450 MB); 0 = none. A document that needs more becomes an "out of memory" error
    # row and the child is restarted, instead of the node running out of memory. Higher lets huge pages
    # and long raw-format documents (every page is held until the document is done) through.
    memory_limit_mb: int = Field(default=4096, ge=0)
    # Each page's own text layer (PyMuPDF get_text), cut to this many characters, travels with the page
    # for the page policy's fallback; 0 = not extracted. Costs a few ms a page and the text's bytes
    # between the stages.
    text_layer_max_chars: int = Field(default=100_000, ge=0)


class PoolConfig(BaseModel):
    """Actor pools. More render actors keep GPUs fed but take CPUs; OCR actors each load the model once."""

    model_config = _FROZEN

    render_actors: int = Field(default=2, ge=1)
    render_num_cpus: float = Field(default=1.0, gt=0)  # fractional on shared/logical CPUs
    render_batch_size: int = Field(
        default=1, ge=1
    )  # documents per render call: 1 keeps timeouts per-document
    ocr_min_actors: int = Field(default=1, ge=1)  # Ray actor pools cannot scale below one
    ocr_max_actors: int = Field(default=1, ge=1)
    # Starting at the full size avoids the one-at-a-time ramp-up; starting small saves idle GPU time.
    ocr_initial_actors: int | None = Field(default=None, ge=1)  # None = ocr_max_actors
    ocr_num_gpus: float = Field(default=1.0, ge=0)
    ocr_num_cpus: float = Field(default=1.0, gt=0)
    # Host memory Ray reserves per OCR actor (0 = none): stops the scheduler from packing more actors on a
    # node than its RAM holds, at the price of idle reservations.
    ocr_memory_bytes: int = Field(default=0, ge=0)
    # Pages per OCR call: larger batches amortise overhead and sort better by cost, but raise OOM risk
    # and hold more pages in flight.
    ocr_batch_size: int = Field(default=16, ge=1)
    # Pages per model forward inside a call: the GPU batch (hf engine only; vLLM batches continuously).
    ocr_sub_batch_size: int = Field(default=8, ge=1)

    # --- the vLLM engine (engine.backend=vllm): one async engine per actor, pages from many batches in it.
    # The engine's serving settings, per actor (rtprune/engines/vllm/settings.py says what each trades
    # off). max_num_seqs is also how many pages the actor keeps in its engine at once: more keeps decode
    # steps full (throughput) until the KV cache is the limit, and holds more pages' memory. The stage
    # never submits more than that, since a page queued inside the engine would be charged busy seconds it
    # does not use (pipeline/stages/gpu_share.py). gpu_memory_utilization: vLLM's share of the GPU; too high
    # for the model fails the actor at start (vLLM profiles memory then), not mid-run. On CPU, set
    # kv_cache_gib.
    ocr_vllm: VllmSettings = Field(default_factory=VllmSettings)
    # Ray Data batches one actor works on at once (the actor's max_concurrency). Enough batches must be in
    # flight to keep max_num_seqs pages in the engine while finished batches leave and new ones arrive:
    # about max_num_seqs / ocr_batch_size + 2. More only holds more rows in memory.
    ocr_batches_in_flight: int = Field(default=8, ge=1)
    # How often Ray redoes an OCR batch whose actor died (engine crash, GPU out of memory at run time, node
    # loss): the actor restarts and the batch's unfinished pages are redone. -1 = forever; a finite number
    # stops the job when a page kills the engine every time, instead of restarting without end.
    ocr_max_task_retries: int = Field(default=3, ge=-1)


class PagePolicy(BaseModel):
    """Second chances for a page whose OCR ended in a loop (`repetition`) or at the token cap (`length`):
    retries first, then the page's own text layer. Every attempt's usage is charged to the page."""

    model_config = _FROZEN

    # Finish reasons that count as a failed OCR attempt; () turns retries and fallback off.
    retry_on: tuple[Literal["repetition", "length"], ...] = ("repetition", "length")
    # Pruning used by retries: "off" keeps every visual token (pruning can cause a loop; an unpruned page
    # costs more prefill), "configured" keeps the engine's setting (then only sampled retries differ).
    retry_pruning: Literal["off", "configured"] = "off"
    # One greedy retry with retry_pruning. Skipped when it would repeat the first attempt exactly (pruning
    # already off, or retry_pruning "configured").
    greedy_retry: bool = True
    # Then this many sampled retries at rising temperature (temperature_start, + temperature_step, ...):
    # sampling breaks loops that greedy decoding falls into, at the price of a less likely reading.
    sampled_retries: int = Field(default=0, ge=0, le=8)
    temperature_start: float = Field(default=0.4, gt=0, le=2)
    temperature_step: float = Field(default=0.3, ge=0, le=1)
    # A page that still fails takes its PDF text layer when it has one (born-digital pages: exact text,
    # but plain text, no markdown or reading-order repair). Off: the first attempt's text and reason stay.
    text_layer_fallback: bool = True
    # Fewer non-space characters than this is "no text layer" (a page number or a stamp is not the page).
    text_layer_min_chars: int = Field(default=16, ge=1)
    # A document whose share of failed pages (error rows, fallen back to the text layer, or still ending in
    # a loop or at the cap) exceeds this is flagged (doc_flagged, RunSummary.documents_flagged) for review.
    # Lower flags more documents.
    flag_document_share: float = Field(default=0.2, ge=0, le=1)
    # Adaptive pruning: a page whose pruned attempt ended normally but with a mean token log-probability
    # (natural log) below this is read again unpruned, and the better attempt kept (pipeline/stages/
    # adaptive.py); both attempts are charged. None: off. Prune every page, pay full price only where the
    # model says it was unsure: a higher threshold re-reads more pages (more cost, fewer pages that pruning
    # hurt). Calibrate it with python -m jobs.quality on a pruned run (its confidence distribution).
    adaptive_min_mean_logprob: float | None = Field(default=None, le=0)


class QualityConfig(BaseModel):
    """Thresholds of the page-quality signals (pipeline/stages/quality.py, docs/quality.md). The defaults
    are starting points, to be calibrated on a corpus's own pages (python -m jobs.quality shows their
    distribution): a tighter threshold flags more good pages for review, a looser one lets more bad pages
    pass as trusted."""

    model_config = _FROZEN

    # Fewer non-space characters than this reads as an (almost) empty page: blank pages and pages the
    # model gave up on look alike here.
    min_characters: int = Field(default=20, ge=0)
    # Below this share of letters plus digits among the non-space characters, the text is mostly symbols
    # (rules, pipes, stray punctuation). Formula-heavy pages sit near 0.6; a higher bound flags them too.
    min_alphanumeric_share: float = Field(default=0.5, ge=0, le=1)
    # Word n-gram of the copy count: shorter n-grams find shorter loops and also legitimate repeated
    # phrases (form labels, table headers); a CJK or Thai character counts as a word.
    repeat_ngram_words: int = Field(default=5, ge=1)
    # From this share of words that repeat an earlier n-gram, the page reads as looping.
    max_repeated_ngram_share: float = Field(default=0.3, gt=0, le=1)
    # Letters needed before a language is read, in UTF-8 bytes (what the identifier reads): 30 is about
    # six Latin words, 15 Cyrillic or Greek letters, 10 CJK characters. Shorter texts are guessed wrongly
    # too often to be worth a name.
    min_language_bytes: int = Field(default=30, ge=1)
    # Below this probability of the best language the page's language is "" (unknown): higher is more
    # sure of the languages it names and calls more mixed or noisy pages unknown.
    min_language_probability: float = Field(default=0.5, ge=0, le=1)
    # Only the first this many characters of the readable text are identified: language costs time linear
    # in length, and a page's language shows long before its end.
    language_sample_characters: int = Field(default=4000, ge=1)
    # A chosen token below this probability counts as a low-probability token.
    low_token_probability: float = Field(default=0.1, gt=0, lt=1)
    # low_confidence when the mean log-probability of the chosen tokens is below this (natural log; -1.0
    # is a geometric-mean probability of 0.37) or when more than this share of them is low-probability.
    min_mean_logprob: float = Field(default=-1.0, le=0)
    max_low_probability_share: float = Field(default=0.2, ge=0, le=1)


class PlanConfig(BaseModel):
    """Planning: how the input is listed and diffed against the committed index in bounded memory."""

    model_config = _FROZEN

    # doc_id ranges the input is spilled into and merged by (a power of two; raised to the index's own
    # count). More ranges: less driver memory per range, more small local files.
    buckets: int = Field(default=256, ge=1, le=65536)
    # Input rows the driver buffers before spilling them to the range files: driver memory vs file count.
    spill_rows: int = Field(default=500_000, ge=1)
    # Concurrent metadata requests for a URI list (one per entry): faster planning vs load on the store.
    list_threads: int = Field(default=16, ge=1, le=256)
    # Local folder for planning's spill and to-do files ("" = the system temp folder); needs room for
    # about 100 bytes per listed document.
    scratch_dir: str = ""
    # Index rows per range before compaction doubles the ranges: larger ranges mean fewer index files
    # per plan, more driver memory while merging one.
    index_bucket_rows: int = Field(default=1_000_000, ge=1)
    # --plan-only's page estimate for documents not yet opened: bytes of PDF per page.
    bytes_per_page: int = Field(default=100_000, ge=1)

    @field_validator("buckets")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError("must be a power of two")
        return value


class LeaseConfig(BaseModel):
    """The run lease on the output root: one digitize run at a time per output, so two runs started on one
    output do not both process (and pay for) every page (pipeline/store/lease.py)."""

    model_config = _FROZEN

    # Off: no lease; two runs on one output both process every new document (no duplicates in the committed
    # view, but twice the cost).
    enabled: bool = True
    # How long a lease lives unrenewed (a run renews it every ttl_s / 5): a killed run blocks the next run
    # on its output at most this long; shorter means more renewal writes and less slack for a stalled driver
    # or a store's bad minute. Hosts' clocks must agree to well within it.
    ttl_s: float = Field(default=300.0, gt=0)
    # How long a run waits for another run's lease to be released or to expire before it refuses: 0
    # refuses at once; .inf waits as long as it takes (jobs.digitize --wait-for-lease).
    wait_s: float = Field(default=0.0, ge=0)
    # Pause between writing the lease and reading it back: of runs whose writes fall within it, only the
    # last writer proceeds. Longer narrows the race left open (docs/reliability.md) and delays each start.
    settle_s: float = Field(default=2.0, ge=0)


class PipelineConfig(BaseModel):
    """One digitize run. Loaded from YAML plus `a.b=value` overrides by jobs/digitize.py."""

    model_config = _FROZEN

    # fsspec URI of a folder/prefix (all *.pdf below it), a glob, or a manifest file (*.txt / *.lst, one
    # URI per line). Any fsspec protocol works: s3://, gs://, file://, a plain local path.
    input: str
    # How to read `input`: "auto" (a manifest.json or *.csv/*.csv.gz/*.parquet file or glob is an inventory,
    # *.txt/*.lst/*.manifest a URI list, anything else a prefix/glob of PDFs), or force "prefix", "uris"
    # or "inventory" (e.g. a folder of inventory files).
    input_kind: Literal["auto", "prefix", "uris", "inventory"] = "auto"
    # `input` is a literal path unless this is set: a folder named "in[1]" or "reports?2024" is that folder.
    # True reads it as a glob pattern (*, ?, [...]; write a literal '[' as [[]), for a prefix or an
    # inventory's data files.
    input_glob: bool = False
    # Columns of header-less inventory CSV files when no manifest.json names them (S3 Inventory's order).
    inventory_columns: tuple[str, ...] = ("Bucket", "Key", "Size", "LastModifiedDate", "ETag")
    # Where pages/, _ledger/ and runs/ go (any fsspec URI).
    output: str
    storage: StorageConfig = Field(default_factory=StorageConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    pools: PoolConfig = Field(default_factory=PoolConfig)
    plan: PlanConfig = Field(default_factory=PlanConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    page_policy: PagePolicy = Field(default_factory=PagePolicy)
    lease: LeaseConfig = Field(default_factory=LeaseConfig)
    # Pages whose own text layer is exact skip the GPU (docs/routing.md). The default OCRs every page.
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    # Per-page quality signals and the `suspect` flag's thresholds (docs/quality.md).
    quality: QualityConfig = Field(default_factory=QualityConfig)
    pricing: str = ""  # pricing YAML path; "" = pipeline/cost/pricing.yaml
    # Crop each figure block of the model's layout from the page image and store it as a PNG under
    # figures/ (committed with its part; the page's Markdown links to it). Off: no image files are stored,
    # figure blocks keep their boxes and the Markdown an invisible placeholder where the figure was.
    figures: bool = True
    # Names the run's part folder, ledger records and summary: letters, digits, '.', '_', '-', starting
    # with a letter or digit, at most 128 characters.
    run_id: str = Field(default_factory=default_run_id)
    # A part (one file, one ledger record: the unit a crash can lose) is committed once its complete
    # documents reach part_target_rows page rows or part_target_bytes (in memory), or commit_documents
    # documents; 0 turns a limit off. Larger parts read faster and list cheaper; a killed run redoes the
    # documents of the part in flight.
    part_target_rows: int = Field(default=10_000, ge=0)
    part_target_bytes: int = Field(default=128 * 1024 * 1024, ge=0)
    commit_documents: int = Field(default=0, ge=0)
    # Also commit whatever is complete after this long: bounds the work a crash loses (and the part size
    # of slow runs).
    commit_interval_s: float = Field(default=60.0, gt=0)
    # Part files without a ledger record older than this are deleted at the start of a run; younger ones
    # may belong to a run still writing (two runs on one output at once).
    orphan_grace_s: float = Field(default=3600.0, ge=0)
    # Redo documents whose committed rows include errors (transient storage or model failures); their new
    # rows replace the old ones in read_committed.
    retry_failed: bool = False
    # How often the driver samples ray.nodes() for node-seconds (fully loaded cost).
    node_sample_interval_s: float = Field(default=5.0, gt=0)
    # Stop the job when Ray Data makes no progress this long (a hung stage); 0 disables.
    no_progress_timeout_s: float = Field(default=0.0, ge=0)
    # Ray Data's own console output (per-operator bars, a resource dump every few seconds, execution plans)
    # beside the run's progress line: detail for finding a stalled stage, noise otherwise. Its log file
    # in the Ray session folder has all of it either way.
    ray_data_progress: bool = False
    # Seconds between progress lines when the console is not a terminal (a log file, CI); on a terminal
    # the line is redrawn in place every second. Shorter fills logs, longer leaves a stall silent longer.
    progress_interval_s: float = Field(default=30.0, gt=0)

    _no_credentials_in_uri = field_validator("input", "output")(uri_without_credentials)

    @field_validator("run_id")
    @classmethod
    def _run_id_is_one_safe_name(cls, value: str) -> str:
        if not _RUN_ID.fullmatch(value):
            raise ValueError(
                "must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit "
                "(it names folders in the output)"
            )
        return value
