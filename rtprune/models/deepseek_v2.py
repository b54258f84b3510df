"""DeepSeek-OCR-2 adapter on transformers' native DeepseekOcr2ForConditionalGeneration.

Token layout of one page: [tile_0 .. tile_{n-1} (144 query tokens each, row-major)][global view (256)]
[view separator (1)], n in 0..6, tiles only when the page's long side exceeds 768 px. Visual tokens are the
outputs of learned queries, not cells of a spatial grid, so token_boxes are NaN. The global view is padded to a
square by the processor, but no query token maps to the padded area, so `padding` is None (the padding-only
baseline has nothing to drop on v2).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from rtprune.deepseek.layout import TokenLayout
from rtprune.models.base import PreparedPage

logger = logging.getLogger(__name__)

TILE_TOKENS, GLOBAL_TOKENS, TILE_PX, GLOBAL_PX = 144, 256, 768, 1024
MIN_TILES, MAX_TILES = 2, 6
DEFAULT_PROMPT = "<image>\n<|grounding|>Convert the document to markdown."
TINY_VOCAB, TINY_IMAGE_TOKEN_ID = 512, 400


def tiny_config() -> Any:
    """A DeepseekOcr2Config with tiny hidden sizes. Views stay 768/1024 px: the query counts are fixed.

    Init ranges are raised from the defaults (SAM's is 1e-10) so that different pages and different pruning
    give different greedy tokens; otherwise tests comparing outputs could not fail.
    """
    from transformers import DeepseekOcr2Config

    sam = dict(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        output_channels=8,
        downsample_channels=[16, 32],
        global_attn_indexes=[1],
        mlp_dim=32,
        window_size=14,
        initializer_range=0.02,
    )
    encoder = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=1,
    )
    text = dict(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        n_routed_experts=4,
        n_shared_experts=1,
        num_experts_per_tok=2,
        moe_intermediate_size=16,
        mlp_layer_types=["dense", "sparse"],
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        max_position_embeddings=8192,
        initializer_range=0.2,
    )
    return DeepseekOcr2Config(
        vision_config={"sam_config": sam, "encoder_config": encoder},
        text_config=text,
        image_token_id=TINY_IMAGE_TOKEN_ID,
    )


def tile_grid(width_px: int, height_px: int) -> tuple[int, int]:
    """(columns, rows) of 768-px tiles the processor cuts a page into; (0, 0) when it does not tile."""
    from transformers.models.deepseek_ocr2.image_processing_pil_deepseek_ocr2 import get_optimal_tiled_canvas

    if max(width_px, height_px) <= TILE_PX:
        return 0, 0
    return get_optimal_tiled_canvas((height_px, width_px), (TILE_PX, TILE_PX), MIN_TILES, MAX_TILES)


def check_strict_load(info: dict[str, Any], model_id: str) -> None:
    """Raise if loading left any weight missing, unexpected or mismatched (transformers only warns)."""
    problems = {k: list(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        raise ValueError(f"checkpoint {model_id!r} does not match the model exactly: {problems}")


class DeepseekOcr2Backend:
    """Backend protocol implementation for DeepSeek-OCR-2 (see rtprune.models.base.Backend)."""

    def __init__(self, model: Any, tokenizer: Any, model_id: str, prompt: str = DEFAULT_PROMPT) -> None:
        from transformers import DeepseekOcr2ImageProcessorPil

        self.model, self.tokenizer, self.model_id, self.prompt = model.eval(), tokenizer, model_id, prompt
        self.image_token_id = int(model.config.image_token_id)
        # The processor's defaults are the model's own rules: 1024-px global view, 2..6 tiles of 768 px.
        self.processor = DeepseekOcr2ImageProcessorPil(
            crop_to_patches=True, min_patches=MIN_TILES, max_patches=MAX_TILES, tile_size=TILE_PX
        )
        self.mode = "dynamic"

    @classmethod
    def tiny_random(
        cls,
        *,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
        mode: str | None = None,
        prompt: str = DEFAULT_PROMPT,
    ) -> DeepseekOcr2Backend:
        """Random weights on a tiny config and a byte-level tokenizer; the text it writes is meaningless."""
        from transformers import DeepseekOcr2ForConditionalGeneration

        from rtprune.models.tiny_tokenizer import build_tiny_tokenizer

        with torch.random.fork_rng(devices=[]):  # seeded without reseeding the caller's RNG
            torch.manual_seed(seed)
            model = DeepseekOcr2ForConditionalGeneration(tiny_config())
        tokenizer = build_tiny_tokenizer(TINY_VOCAB, TINY_IMAGE_TOKEN_ID)
        return cls(model.to(device=device, dtype=dtype), tokenizer, "tiny-random-v2", prompt)

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        *,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
        tokenizer: Any = None,
        mode: str | None = None,
        prompt: str = DEFAULT_PROMPT,
    ) -> DeepseekOcr2Backend:
        """Load a local checkpoint directory (or a hub id already in the cache), strictly."""
        from transformers import AutoTokenizer, DeepseekOcr2ForConditionalGeneration

        model, info = DeepseekOcr2ForConditionalGeneration.from_pretrained(
            path, dtype=dtype, output_loading_info=True
        )
        check_strict_load(info, path)
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
        return cls(model.to(device), tokenizer, path, prompt)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def visual_tokens(self, width_px: int, height_px: int) -> int:
        cols, rows = tile_grid(width_px, height_px)
        return TILE_TOKENS * cols * rows + GLOBAL_TOKENS + 1

    def prepare(self, image: Any) -> PreparedPage:
        """PIL image -> pixel_values (1, 3, 1024, 1024), pixel_values_local (n, 3, 768, 768) or None."""
        feats = self.processor(images=[image.convert("RGB")], return_tensors="pt")
        n_tiles = int(feats["num_local_patches"][0])
        inputs = {
            "pixel_values": feats["pixel_values"],
            "pixel_values_local": feats.get("pixel_values_local") if n_tiles else None,
            "num_local_patches": n_tiles,
        }
        n = TILE_TOKENS * n_tiles + GLOBAL_TOKENS + 1
        protected = torch.zeros(n, dtype=torch.bool)
        protected[-1] = True  # the view separator
        layout = TokenLayout(n_tokens=n, protected=protected, token_boxes=torch.full((n, 4), float("nan")))
        return PreparedPage(
            model_inputs=inputs,
            layout=layout,
            image_gray=self._gray(feats["pixel_values"][0]),
            meta={"tiles": n_tiles, "size_px": image.size},
        )

    def _gray(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(3, S, S) normalised global view -> (S, S) gray in [0, 1]."""
        mean = torch.tensor(self.processor.image_mean).view(3, 1, 1)
        std = torch.tensor(self.processor.image_std).view(3, 1, 1)
        return (pixel_values.float() * std + mean).mean(0).clamp(0, 1)

    def collate(self, pages: Sequence[PreparedPage]) -> dict[str, Any]:
        """The model's image inputs for a batch: global views stacked (B, 3, 1024, 1024), tiles of all pages
        concatenated in page order (sum n_i, 3, 768, 768) with their per-page counts."""
        dtype, device = self.model.dtype, self.device
        batch: dict[str, Any] = {
            "pixel_values": torch.cat([p.model_inputs["pixel_values"] for p in pages]).to(device, dtype)
        }
        local = [p.model_inputs["pixel_values_local"] for p in pages if p.model_inputs["num_local_patches"]]
        if local:
            batch["pixel_values_local"] = torch.cat(local).to(device, dtype)
            batch["num_local_patches"] = [p.model_inputs["num_local_patches"] for p in pages]
        return batch

    def encode(self, pages: Sequence[PreparedPage]) -> list[torch.Tensor]:
        """One (N_i, D) tensor per page: tiles, global view, separator, after the projector."""
        with torch.inference_mode():
            out = self.model.model.get_image_features(**self.collate(pages), return_dict=True)
        return list(out.pooler_output)

    def prompt_ids(self, n_image_tokens: int) -> list[int]:
        """[BOS] + prompt text before <image> + n placeholders + the rest (plain template)."""
        before, after = self.prompt.split("<image>", 1)
        enc = self.tokenizer
        ids = [enc.bos_token_id] + enc.encode(before, add_special_tokens=False)
        return ids + [self.image_token_id] * n_image_tokens + enc.encode(after, add_special_tokens=False)
