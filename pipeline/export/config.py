"""ExportConfig: what one export run reads, where it writes, and how it cuts the JSONL."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.config import RenderConfig, StorageConfig, uri_without_credentials


class ExportConfig(BaseModel):
    """One export run. Loaded from YAML plus `a.b=value` overrides by jobs/export.py."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # The digitize job's output (any fsspec URI): only its committed parts are read, never written.
    output: str
    # Where markdown/, jsonl/ and the export state _export/ go (any fsspec URI; may lie inside `output`).
    dest: str
    # The same object-store settings the digitize job takes; they apply to both URIs when they are s3://.
    storage: StorageConfig = Field(default_factory=StorageConfig)
    # One Markdown file per document. Off writes JSONL only: at hundreds of millions of documents, one
    # small object per document costs more requests (and listing time) than the JSONL shards.
    markdown: bool = True
    # Beside each Markdown file, an HTML viewer of the document (its pages' layouts drawn beside their
    # Markdown; docs/structured_pages.md): one more small file per document.
    viewer: bool = True
    # In each viewer, every page's image under its blocks: the page rendered again from its source PDF
    # (pipeline/export/page_images.py), only when the source still has the content hash the run read, so
    # the image is of the bytes the model saw. One JPEG per page beside the figures, one source read per
    # document, ~60 ms of CPU and ~80 kB per page of text (benchmarks/bench_page_images.py). Off: the viewer draws each page as a blank sheet of its size,
    # and sources are never read.
    page_images: bool = True
    # Width of a page image in pixels: twice the viewer's sheet, sharp on high-density screens.
    page_image_width_px: int = Field(default=960, ge=64, le=4096)
    # Documents rendered at once, each in its own child process.
    page_image_workers: int = Field(default=2, ge=1, le=64)
    # Caps on reading and rendering a source for its page images (bytes, pages, time, memory): set them as
    # the digitize job's render settings, so a document it read gets its images. dpi, page_format and
    # text_layer_max_chars are not used here.
    render: RenderConfig = Field(default_factory=RenderConfig)
    # Uncompressed bytes per JSONL shard (a record larger than this gets a shard of its own). Larger
    # shards mean fewer files for downstream readers; smaller ones less memory here and finer parallelism.
    shard_max_bytes: int = Field(default=128 * 1024 * 1024, ge=1)
    # gzip: ~4x smaller shards (.jsonl.gz, read natively by datatrove and Dolma tools) at some CPU.
    compression: Literal["none", "gzip"] = "none"

    _no_credentials_in_uri = field_validator("output", "dest")(uri_without_credentials)
