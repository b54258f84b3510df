"""The transformers engine: static left-padded batches through `generate`, RTPrune at prefill, and the
loader that builds a model adapter (rtprune.models) from an EngineConfig. Imports transformers."""
