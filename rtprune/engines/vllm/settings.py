"""VllmSettings: what the vLLM engine needs beyond EngineConfig (serving capacity and memory)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The KV cache on CPU when kv_cache_gib is unset: small enough for a shared 24 GiB machine, and room for
# about 8,700 tokens of real v1 in fp32 (12 layers of 1280-wide K and V: 120 KiB a token), some 8 Gundam
# pages at once; the tiny models need far less.
CPU_KV_CACHE_GIB = 1.0


class VllmSettings(BaseModel):
    """vLLM's serving knobs. Every field trades something off; the comments say what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Sequences decoded together: more raises throughput until the KV cache or the device is full, and
    # raises each page's latency.
    max_num_seqs: int = Field(default=64, ge=1)
    # Tokens one engine step may process (prefill chunks + decodes); larger prefills whole pages in one
    # step, smaller keeps decode steps short while pages are being prefilled. None: vLLM's default.
    max_num_batched_tokens: int | None = Field(default=None, ge=1)
    # Longest prompt + output a page may have; a page past it fails alone. None: the checkpoint's limit.
    max_model_len: int | None = Field(default=None, ge=1)
    # KV cache size in GiB. More cache lets more pages decode at once. None: on GPUs vLLM sizes it from
    # gpu_memory_utilization; on CPU it is CPU_KV_CACHE_GIB (vLLM's CPU build would otherwise reserve
    # gpu_memory_utilization of the machine's RAM, 90% by default, too much for a shared machine).
    kv_cache_gib: float | None = Field(default=None, gt=0)
    # Share of GPU memory vLLM may take (weights, activations, KV cache); the rest stays for others. On CPU
    # it is the share of RAM, and unused while kv_cache_gib is set (as it is by default there).
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    # No torch.compile and no CUDA graphs: slower steps, a much faster start (compiling takes minutes on a
    # small CPU machine) and less memory. None: on CPU, off on GPUs.
    enforce_eager: bool | None = None
    # "auto" reads the weights from the checkpoint; "dummy" gives random weights of the real sizes without
    # reading them (benchmarks of the architecture, never for text).
    load_format: str = "auto"
    # How a looping page is stopped. "logits_processor": this project's processor forces EOS inside vLLM's
    # sampler, on the step the loop shows (a V1-interface processor: vLLM's V1 model runner takes it, the V2
    # runner refuses it at start). "stream": the engine watches each page's streamed ids and aborts the
    # request when they loop; same rule, text and finish reason, needs nothing from vLLM's internals, and
    # decodes a few tokens more per looping page (those in flight when the abort lands). "auto": the
    # processor where the model runner vLLM picks takes it, the stream guard where it does not.
    repetition_guard: Literal["auto", "logits_processor", "stream"] = "auto"
    # Collect the log-probability of each sampled token (SamplingParams logprobs=0: the sampled token only,
    # no top-k lists), the pages' confidence. Off: pages report no confidence (neutral) and save its cost
    # (measured in docs/quality.md).
    token_logprobs: bool = True
    # vLLM's own log level in the engine's processes (its INFO lines are many and say nothing a run needs).
    # VLLM_LOGGING_LEVEL set in the engine's environment wins; "INFO" or "DEBUG" brings them back.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    # Where the vLLM engine keeps the model folder it makes for engine.model=tiny-random-v1. None:
    # $XDG_CACHE_HOME/rtprune-ocr, else ~/.cache/rtprune-ocr (rtprune.engines.vllm.tiny_model).
    model_cache_dir: str | None = None
    # Any other AsyncEngineArgs field, passed as is (wins over everything above).
    engine_overrides: dict[str, Any] = Field(default_factory=dict)

    def engine_kwargs(self, cpu: bool = False) -> dict[str, Any]:
        """These settings as AsyncEngineArgs keywords for a CPU or GPU engine (None fields left to vLLM, but
        the device defaults: on CPU the KV cache is CPU_KV_CACHE_GIB and enforce_eager on)."""
        kwargs: dict[str, Any] = {
            "max_num_seqs": self.max_num_seqs,
            "load_format": self.load_format,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "enforce_eager": cpu if self.enforce_eager is None else self.enforce_eager,
        }
        if self.max_num_batched_tokens is not None:
            kwargs["max_num_batched_tokens"] = self.max_num_batched_tokens
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        kv_cache_gib = CPU_KV_CACHE_GIB if cpu and self.kv_cache_gib is None else self.kv_cache_gib
        if kv_cache_gib is not None:
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        return kwargs | self.engine_overrides
