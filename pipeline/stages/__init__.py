"""The Ray Data stages and the pure steps they call: rendering (PyMuPDF in an isolated child), OCR on the
static-batch and vLLM engines, the page policy (second chances), page rows and the GPU-seconds split.

Imports: pipeline.config, pipeline.schema, pipeline.redact, pipeline.store (reads and retries), rtprune.engines
(the contract; the engines themselves lazily, inside the actors)."""
