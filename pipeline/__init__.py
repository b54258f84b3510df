"""Ray Data ingestion pipeline: object storage -> render -> OCR -> Parquet with per-page cost."""
