"""The vLLM engine and everything that runs inside vLLM: the engine (AsyncLLM, continuous batching), its
settings and page bookkeeping, and the plugin (plugin/): the DeepSeek-OCR v1 model with pruning inside, its
processor, the repetition logits processor and the lifeline of vLLM's child processes.

Only engine.py and the plugin's model, processor and logits modules import vLLM, lazily where a driver may load them."""
