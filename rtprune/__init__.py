"""RTPrune: visual-token pruning for DeepSeek-OCR at prefill.

The core imports torch only. Model adapters (``rtprune.models``) and the engines (``rtprune.engines``)
import transformers or vLLM lazily and are not loaded by ``import rtprune``.
"""

from rtprune.api import PruneConfig, PruneResult, prune, prune_batch

__all__ = ["PruneConfig", "PruneResult", "prune", "prune_batch"]
