"""Where pages are stored and planned: fsspec access, input listing and inventories, the output layout
(paths), committing parts and ledger records, reading committed output, the index of committed documents,
compaction and planning.

Imports: pipeline.config, pipeline.schema, pipeline.summary, pipeline.redact; never the stages, cost or driver."""
