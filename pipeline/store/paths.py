"""The layout of an output root: every key under it is built, globbed and parsed here and nowhere else.

    {output}/pages/{run_id}/part-{seq:06d}.parquet   page rows (PAGES_SCHEMA), written first
    {output}/figures/{run_id}/{seq:06d}/{doc_id}-{page:05d}-{block:03d}.png   figures cropped from the
                                                     part's pages, written before the part
    {output}/_ledger/{run_id}/{seq:06d}.json         commit record, written last and atomically
    {output}/runs/{run_id}/summary.json              RunSummary, at the end of a run
    {output}/_index/manifest-{gen:010d}.json      {gen, nonce, buckets, files, watermark, rows}: written last
    {output}/_index/g{gen:010d}-{nonce}/b{bucket:05d}.parquet   INDEX_SCHEMA rows of one doc_id range
    {output}/_index/open/{run_id}                 a run that may have ledger records the index lacks
    {output}/_lease/run.json                      the run lease: which run holds the output (lease.py)

A part file, and the figure folder of the same run and seq, exist for readers only once their ledger
record does (the commit protocol: output.py); the index
and its open markers are index.py's (what they guarantee is said there).

Keys are relative to the output root (Output.path makes them paths). Parsers take a key or a full path and
read only its last components, so they work on what a listing returns."""

from __future__ import annotations

PAGES = "pages"
FIGURES = "figures"
LEDGER = "_ledger"
RUNS = "runs"
INDEX = "_index"
OPEN_DIR = f"{INDEX}/open"
LEASE_KEY = "_lease/run.json"

LEDGER_GLOB = f"{LEDGER}/*/*.json"
PART_GLOB = f"{PAGES}/*/part-*.parquet"
FIGURE_GLOB = f"{FIGURES}/*/*/*.png"
SUMMARY_GLOB = f"{RUNS}/*/summary.json"
INDEX_MANIFEST_GLOB = f"{INDEX}/manifest-*.json"
INDEX_FOLDER_GLOB = f"{INDEX}/g*"

_PART_PREFIX, _PART_SUFFIX = "part-", ".parquet"
_LEDGER_SUFFIX = ".json"
_MANIFEST_PREFIX, _MANIFEST_SUFFIX = "manifest-", ".json"


def part_folder_key(run_id: str) -> str:
    """The folder of one run's part files."""
    return f"{PAGES}/{run_id}"


def part_key(run_id: str, seq: int) -> str:
    return f"{part_folder_key(run_id)}/{_PART_PREFIX}{seq:06d}{_PART_SUFFIX}"


def figure_folder_key(run_id: str, seq: int) -> str:
    """The folder of the figures of one part (run and seq): committed by the part's ledger record."""
    return f"{FIGURES}/{run_id}/{seq:06d}"


def figure_key(run_id: str, seq: int, doc_id: str, page_index: int, block_order: int) -> str:
    """The figure of block `block_order` of a page, committed with part `seq` of `run_id`."""
    return f"{figure_folder_key(run_id, seq)}/{doc_id}-{page_index:05d}-{block_order:03d}.png"


def run_figure_glob(run_id: str) -> str:
    return f"{FIGURES}/{run_id}/*/*.png"


def figure_part(path: str) -> tuple[str, int]:
    """(run_id, seq) of the part a figure file belongs to, from its path (`figures/<run>/<seq>/<name>`)."""
    run_id, seq = path.rstrip("/").rsplit("/", 3)[-3:-1]
    return run_id, int(seq)


def ledger_key(run_id: str, seq: int) -> str:
    return f"{LEDGER}/{run_id}/{seq:06d}{_LEDGER_SUFFIX}"


def summary_key(run_id: str) -> str:
    return f"{RUNS}/{run_id}/summary.json"


def index_manifest_key(gen: int) -> str:
    return f"{INDEX}/{_MANIFEST_PREFIX}{gen:010d}{_MANIFEST_SUFFIX}"


def index_folder_key(gen: int, nonce: str) -> str:
    """The folder of one index generation's bucket files (the nonce keeps concurrent compactions apart)."""
    return f"{INDEX}/g{gen:010d}-{nonce}"


def index_bucket_key(gen: int, nonce: str, bucket: int) -> str:
    return f"{index_folder_key(gen, nonce)}/b{bucket:05d}.parquet"


def open_key(run_id: str) -> str:
    """The open-run marker of run_id."""
    return f"{OPEN_DIR}/{run_id}"


def run_ledger_glob(run_id: str) -> str:
    return f"{LEDGER}/{run_id}/*{_LEDGER_SUFFIX}"


def run_part_glob(run_id: str) -> str:
    return f"{part_folder_key(run_id)}/{_PART_PREFIX}*{_PART_SUFFIX}"


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def ledger_seq(path: str) -> int:
    """The seq of a ledger record from its path (`_ledger/<run>/<seq>.json`)."""
    return int(_name(path)[: -len(_LEDGER_SUFFIX)])


def part_seq(path: str) -> int:
    """The seq of a part file from its path (`pages/<run>/part-<seq>.parquet`)."""
    return int(_name(path)[len(_PART_PREFIX) : -len(_PART_SUFFIX)])


def run_of(path: str) -> str:
    """The run id of a ledger record or a part file from its path (the folder it is in)."""
    return path.rstrip("/").rsplit("/", 2)[-2]


def open_run(path: str) -> str:
    """The run id of an open-run marker from its path."""
    return _name(path)


def index_gen(path: str) -> int:
    """The generation of an index manifest (`manifest-<gen>.json`) or generation folder (`g<gen>-<nonce>`)."""
    name = _name(path)
    if name.startswith(_MANIFEST_PREFIX) and name.endswith(_MANIFEST_SUFFIX):
        return int(name[len(_MANIFEST_PREFIX) : -len(_MANIFEST_SUFFIX)])
    if name.startswith("g"):
        return int(name[1:].split("-", 1)[0])
    raise ValueError(f"not an index manifest or generation folder: {path}")


def index_folder_of(bucket_key: str) -> str:
    """The generation folder of an index bucket file (`_index/g<gen>-<nonce>/b<bucket>.parquet`)."""
    return bucket_key.rsplit("/", 1)[0]
