"""Export committed pages as documents: Markdown per document and JSONL for LLM data pipelines."""

from pipeline.export.config import ExportConfig
from pipeline.export.run import ExportResult, run_export

__all__ = ["ExportConfig", "ExportResult", "run_export"]
