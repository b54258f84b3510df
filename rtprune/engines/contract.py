"""The engines' contract with their callers (the pipeline, jobs): the config, what a page's OCR returns
(PageResult), what names an engine's output (EngineIdentity), and the two ways in (Engine: static batches;
AsyncEngine: one page at a time). Both engines (rtprune.engines.hf, rtprune.engines.vllm) fulfil them.
No transformers or vLLM import here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from rtprune.api import PruneConfig

FinishReason = Literal["eos", "length", "repetition"]


class EngineConfig(BaseModel):
    """How pages are turned into text. Every field trades something off; the comments say what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Hub id, local checkpoint directory, or "tiny-random-v1" / "tiny-random-v2": random weights built in
    # code for offline smoke runs and tests; their text is meaningless.
    model: str = "tiny-random-v1"
    # Which engine runs the model: "hf" (transformers generate on static batches) or "vllm" (continuous
    # batching, paged KV cache; needs the vllm extra). "auto" picks vllm when it is installed and a CUDA
    # device is present, else hf.
    backend: Literal["auto", "hf", "vllm"] = "auto"
    # Model generation; "auto" reads it from the checkpoint's config.json (deepseek_vl_v2 -> v1,
    # deepseek_ocr2 -> v2).
    generation: Literal["auto", "v1", "v2"] = "auto"
    # v1 resolution mode: more tokens read small print better and cost more (tiny 64, small 100,
    # base 256, large 400 visual tokens; gundam adds 640px tiles). Ignored by v2, which tiles itself.
    mode: Literal["tiny", "small", "base", "large", "gundam"] = "large"
    prune: PruneConfig = Field(default_factory=PruneConfig)
    # "compact" renumbers positions after pruning; "original" keeps the unpruned positions (gaps).
    position_mode: Literal["compact", "original"] = "compact"
    prompt: str = "<image>\n<|grounding|>Convert the document to markdown."
    # Cap on generated tokens per page: bounds the cost of a page that never emits EOS.
    max_new_tokens: int = Field(default=8192, ge=1)
    # Repetition guard: stop a page whose last `ngram` tokens already occur in the last `window` tokens.
    repetition_ngram: int = Field(default=30, ge=2)
    repetition_window: int = Field(default=90, ge=4)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    device: str = "auto"  # auto: cuda if available
    seed: int = (
        0  # tiny-random weights, and sampled decoding (ocr with temperature > 0): reproducible retries
    )


@dataclass(frozen=True)
class PageUsage:
    """What one page used. Batch-level phase times are shared among the batch's pages in proportion to
    their work (prompt tokens for encode/prune/prefill, output tokens for decode), so the per-page
    seconds of a batch add up to the batch's measured seconds."""

    visual_tokens: int
    visual_tokens_kept: int
    prompt_tokens: int
    output_tokens: int
    encode_s: float
    prune_s: float
    prefill_s: float
    decode_s: float
    finish_reason: FinishReason

    @property
    def gpu_s(self) -> float:
        return self.encode_s + self.prune_s + self.prefill_s + self.decode_s


@dataclass(frozen=True)
class PageResult:
    """A page's text, what it used, and the decoder's confidence in it.

    token_logprobs: the natural-log probability of each token the text was decoded from, in order (EOS
    included when the text ended in one, whether the model chose it or the repetition guard forced it),
    under the model's own distribution in fp32: the softmax of its logits before temperature, sampling
    filters and the repetition guard, so a sampled page is scored on the same scale as a greedy one. Empty
    when the engine did not collect them (vLLM with collection switched off)."""

    text: str
    usage: PageUsage
    token_logprobs: tuple[float, ...] = ()


@dataclass(frozen=True)
class EngineIdentity:
    """What names an engine's output: every row it produces carries these four values."""

    model_id: str  # the model as configured (hub id or checkpoint directory), not a resolved cache path
    model_mode: str  # v1 resolution mode, or "dynamic" (v2)
    prune_method: str
    prune_config_hash: str  # the hash of the pruning that really runs


class Engine(Protocol):
    """Static batches: a list of pages in, one PageResult per page out, in order. A failing batch raises
    (out of memory as the framework's own error, so the caller can split the batch)."""

    @property
    def identity(self) -> EngineIdentity: ...

    # prune: None = configured pruning, PruneConfig(method="none") = off; temperature > 0 samples (seeded).
    def ocr(
        self, images: Sequence[Any], *, prune: PruneConfig | None = None, temperature: float = 0.0
    ) -> list[PageResult]: ...

    def visual_tokens(self, width_px: int, height_px: int) -> int: ...


class AsyncEngine(Protocol):
    """One page at a time, many in flight at once (continuous batching): a failing page raises alone."""

    @property
    def identity(self) -> EngineIdentity: ...

    async def ocr_page(
        self, image: Any, *, prune: PruneConfig | None = None, temperature: float = 0.0
    ) -> PageResult: ...

    def close(self) -> None: ...
