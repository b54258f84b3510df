"""DeepSeek-OCR v1 (the RTPrune paper's model) behind the Backend protocol, on transformers 5.x.

The model is transformers' native UnlimitedOcrForConditionalGeneration configured as v1 (see v1_config);
pages are preprocessed by v1's own rules (see v1_preprocess). Loading is strict: every weight of the
checkpoint is accounted for or the load fails, naming the keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rtprune.deepseek.layout import TokenLayout
from rtprune.deepseek.v1_preprocess import count_tokens, mode_spec, prepare_views, token_layout
from rtprune.models.base import PreparedPage
from rtprune.models.v1_config import (
    V1LoadError,
    load_v1_model,
    read_v1_config,
    save_v1_checkpoint,
    unlimited_config_from_v1,
)

DEFAULT_PROMPT = "<image>\n<|grounding|>Convert the document to markdown."
IMAGE_TAG = "<image>"
TINY_MODEL_ID = "tiny-random-v1"

__all__ = ["DeepseekOcrV1Backend", "V1LoadError", "save_v1_checkpoint", "DEFAULT_PROMPT", "TINY_MODEL_ID"]


def resolve_checkpoint(path_or_hub_id: str) -> Path:
    """A local directory as is; otherwise a hub snapshot, with a clear error when it cannot be had."""
    local = Path(path_or_hub_id).expanduser()
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(repo_id=path_or_hub_id, allow_patterns=["*.json", "*.safetensors", "*.model"])
        )
    except Exception as exc:  # offline, unknown repo, invalid id, auth: all end the same way for the user
        raise V1LoadError(
            f"cannot load DeepSeek-OCR v1 model {path_or_hub_id!r}: it is not a local directory and the hub "
            f"download failed ({type(exc).__name__}: {exc}). Download the checkpoint where there is network "
            "(e.g. `hf download deepseek-ai/DeepSeek-OCR --local-dir DIR`) and pass that directory as the model."
        ) from exc


def tiny_random_config(
    vocab_size: int = 1024,
    image_token_id: int = 815,
    text_heads: int = 4,
    sam: dict[str, Any] | None = None,
    clip: dict[str, Any] | None = None,
):
    """A tiny UnlimitedOcrConfig in v1's shape (dense layer then MoE, full attention) for CPU tests.

    text_heads: attention heads of the 64-wide language model (head size 64 / text_heads); sam / clip:
    fields of the vision encoders' configs to change (vLLM's tiny model needs other sizes)."""
    from transformers import UnlimitedOcrConfig

    text = {
        "vocab_size": vocab_size, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
        "num_attention_heads": text_heads, "num_key_value_heads": text_heads, "n_routed_experts": 4, "n_shared_experts": 1,
        "num_experts_per_tok": 2, "moe_intermediate_size": 32, "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "tie_word_embeddings": False,
        "layer_types": ["full_attention"] * 2, "mlp_layer_types": ["dense", "sparse"], "sliding_window": 128,
    }  # fmt: skip
    sam_cfg = {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "global_attn_indexes": [1],
        "mlp_dim": 64, "output_channels": 32, "downsample_channels": [48, 64], "initializer_range": 0.02,
    }  # fmt: skip
    clip_cfg = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64}
    return UnlimitedOcrConfig(
        text_config=text,
        vision_config={"sam_config": sam_cfg | (sam or {}), "encoder_config": clip_cfg | (clip or {})},
        image_token_id=image_token_id,
    )


def tiny_random_model(cfg: Any, seed: int) -> Any:
    """UnlimitedOcrForConditionalGeneration with seeded random weights (fp32, CPU), the caller's RNG untouched."""
    from transformers import UnlimitedOcrForConditionalGeneration

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        model = UnlimitedOcrForConditionalGeneration(cfg)
        # transformers zero-inits these; random values make the tokens position-aware
        sam = model.model.vision_tower.sam_encoder
        sam.pos_embed.normal_(0.0, 0.5)
        for layer in sam.layers:
            layer.attn.rel_pos_h.normal_(0.0, 0.5)
            layer.attn.rel_pos_w.normal_(0.0, 0.5)
    return model.eval()


class DeepseekOcrV1Backend:
    """A loaded v1 model in one resolution mode: tiny, small, base, large or gundam."""

    def __init__(self, model: Any, tokenizer: Any, *, model_id: str, mode: str = "large",
                 prompt: str = DEFAULT_PROMPT) -> None:  # fmt: skip
        self.spec = mode_spec(mode)
        if IMAGE_TAG not in prompt:
            raise ValueError(f"the prompt must contain {IMAGE_TAG!r}: {prompt!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_token_id = int(model.config.image_token_id)
        self.model_id = model_id
        self.mode = mode
        self.prompt = prompt
        self._prefix_ids, self._suffix_ids = self._prompt_parts(prompt)

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str, *, mode: str = "large", dtype: torch.dtype = torch.float32,
                        device: str = "cpu", tokenizer: Any = None,
                        prompt: str = DEFAULT_PROMPT) -> DeepseekOcrV1Backend:  # fmt: skip
        """Load an original v1 hub checkpoint (config.json + safetensors with the original key names)."""
        directory = resolve_checkpoint(path_or_hub_id)
        cfg = unlimited_config_from_v1(read_v1_config(directory))
        model = load_v1_model(directory, cfg, dtype=dtype, device=device)
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(directory))
        return cls(model, tokenizer, model_id=path_or_hub_id, mode=mode, prompt=prompt)

    @classmethod
    def tiny_random(cls, *, mode: str = "large", seed: int = 0, dtype: torch.dtype = torch.float32,
                    device: str = "cpu", prompt: str = DEFAULT_PROMPT) -> DeepseekOcrV1Backend:  # fmt: skip
        """Random weights in a tiny v1-shaped config: runs in seconds on CPU; its text is meaningless."""
        from rtprune.models.tiny_tokenizer import build_tiny_tokenizer

        cfg = tiny_random_config()
        model = tiny_random_model(cfg, seed).to(device=device, dtype=dtype)
        tokenizer = build_tiny_tokenizer(cfg.text_config.vocab_size, cfg.image_token_id)
        return cls(model, tokenizer, model_id=TINY_MODEL_ID, mode=mode, prompt=prompt)

    def _prompt_parts(self, prompt: str) -> tuple[list[int], list[int]]:
        before, after = prompt.split(IMAGE_TAG, 1)
        encode = self.tokenizer.encode
        prefix = encode(before, add_special_tokens=False) if before else []
        return [int(self.tokenizer.bos_token_id)] + prefix, encode(after, add_special_tokens=False)

    def prompt_ids(self, n_image_tokens: int) -> list[int]:
        """[bos] + prompt text before <image> + [image_token_id] * n + the rest of the prompt (plain template)."""
        return self._prefix_ids + [self.image_token_id] * n_image_tokens + self._suffix_ids

    def visual_tokens(self, width_px: int, height_px: int) -> int:
        return count_tokens(width_px, height_px, self.spec)

    def layout(self, width_px: int, height_px: int) -> TokenLayout:
        return token_layout(width_px, height_px, self.spec)

    def prepare(self, image: Any) -> PreparedPage:
        """PIL page -> v1 views for this mode + layout; image_gray is the padded S x S global view."""
        inputs, gray = prepare_views(image, self.spec)
        meta = {"size_px": (image.width, image.height), "mode": self.mode}
        if "patches_grid" in inputs:
            meta["crop_grid"] = tuple(inputs["patches_grid"])
        return PreparedPage(inputs, token_layout(image.width, image.height, self.spec), gray, meta)

    def collate(self, pages: Sequence[PreparedPage]) -> dict[str, Any]:
        """Batch the pages' views: global views stacked, crops of all pages concatenated in page order.

        Pages with different crop grids (or none) share a batch: get_image_features splits the crops
        by num_local_patches and stitches each page with its own patches_grid.
        """
        device, dtype = self.model.device, self.model.dtype
        batch: dict[str, Any] = {
            "pixel_values": torch.cat([p.model_inputs["pixel_values"] for p in pages]).to(device, dtype)
        }
        local = [
            p.model_inputs["pixel_values_local"] for p in pages if "pixel_values_local" in p.model_inputs
        ]
        if local:
            batch["pixel_values_local"] = torch.cat(local).to(device, dtype)
            batch["num_local_patches"] = [int(p.model_inputs.get("num_local_patches", 0)) for p in pages]
            batch["patches_grid"] = [list(p.model_inputs.get("patches_grid", [1, 1])) for p in pages]
        return batch

    @torch.no_grad()
    def encode(self, pages: Sequence[PreparedPage]) -> list[torch.Tensor]:
        """One (N_i, D) LLM-input embedding tensor per page, in layout order (crops, global, separator)."""
        if not pages:
            return []
        out = self.model.model.get_image_features(**self.collate(pages), return_dict=True)
        feats = list(out.pooler_output)
        for page, f in zip(pages, feats, strict=True):
            if f.shape[0] != page.layout.n_tokens:
                raise RuntimeError(
                    f"model gave {f.shape[0]} visual tokens, layout says {page.layout.n_tokens}"
                )
        return feats
