"""DeepSeek-OCR v1 for vLLM with RTPrune inside `embed_multimodal` (runs in vLLM's worker processes).

Built from vLLM's own parts (deepencoder's SAM and CLIP, deepseek_vl2's projector, the registered DeepSeek
language model) with every vision size read from the checkpoint's `vision_config.width`, and the layout
v1 uses: [crops stitched into one grid, each row + newline][global grid, each row + newline][separator].
Each image's tokens are then pruned to the count the front end planned (rtprune.engines.vllm.plugin.page_plan).

It does not import vLLM's DeepseekOCRForCausalLM module: that one pulls torchvision (unusable next to a CPU
torch) and fixes the mode in module constants. Encoder CUDA graphs are not offered: they assume full counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

import torch
import torch.nn as nn
from transformers import CLIPVisionConfig
from vllm.config import VllmConfig
from vllm.model_executor.models.deepencoder import DeepCLIPVisionTransformer, ImageEncoderViT
from vllm.model_executor.models.deepseek_vl2 import MlpProjector
from vllm.model_executor.models.interfaces import SupportsMultiModal, SupportsPP
from vllm.model_executor.models.utils import (
    AutoWeightsLoader,
    WeightsMapper,
    init_vllm_registered_model,
    maybe_prefix,
)
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.sequence import IntermediateTensors

from rtprune.engines.vllm.plugin.page_plan import PagePlan, decode_prune, prune_page
from rtprune.engines.vllm.plugin.processor import (
    IMAGE_TAG,
    RtpruneOCRDummyInputsBuilder,
    RtpruneOCRMultiModalProcessor,
    RtpruneOCRProcessingInfo,
)

CLIP_FFN_DEFAULT, SAM_MLP_RATIO = 4096, 4  # what real v1 hard-codes (CLIP-L FFN, SAM-B MLP ratio)
SAM_NECK, SAM_NET2 = 256, 512  # vLLM's SAM neck and first downsampling conv are fixed at these widths


def build_sam(width: dict) -> ImageEncoderViT:
    """SAM-ViT from v1's vision_config.width["sam_vit_b"] (real v1: 768 wide, 12 layers, 12 heads)."""
    sam = width["sam_vit_b"]
    channels = list(sam.get("downsample_channels", [SAM_NET2, 1024]))
    if channels[0] != SAM_NET2:
        raise ValueError(f"vLLM's SAM has a fixed {SAM_NECK}->{SAM_NET2} conv; checkpoint has {channels}")
    return ImageEncoderViT(
        depth=sam["layers"],
        embed_dim=sam["width"],
        img_size=1024,
        mlp_ratio=SAM_MLP_RATIO,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        num_heads=sam["heads"],
        patch_size=16,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=list(sam["global_attn_indexes"]),
        window_size=14,
        out_chans=SAM_NECK,
        last_conv_output=channels[1],
    )


def clip_config(width: dict) -> CLIPVisionConfig:
    """CLIP-L config from vision_config.width["clip-l-14-224"] (real v1: 1024 wide, 24 layers, 16 heads)."""
    clip = width["clip-l-14-224"]
    return CLIPVisionConfig(
        hidden_size=clip["width"],
        intermediate_size=int(clip.get("ffn_hidden_size", CLIP_FFN_DEFAULT)),
        num_attention_heads=clip["heads"],
        num_hidden_layers=clip["layers"],
        image_size=clip.get("image_size", 224),
        patch_size=clip.get("patch_size", 14),
        projection_dim=512,
        layer_norm_eps=1e-5,
    )


def _item(value, index: int) -> torch.Tensor:
    """One image's tensor from a batched field (a stacked tensor, or a list when shapes differ)."""
    return value[index]


@MULTIMODAL_REGISTRY.register_processor(
    RtpruneOCRMultiModalProcessor, info=RtpruneOCRProcessingInfo, dummy_inputs=RtpruneOCRDummyInputsBuilder
)
class RtpruneDeepseekOCRForCausalLM(nn.Module, SupportsMultiModal, SupportsPP):
    hf_to_vllm_mapper = WeightsMapper(orig_to_new_prefix={
        "model.embed_tokens.": "language_model.model.embed_tokens.",
        "model.layers.": "language_model.model.layers.",
        "model.norm.": "language_model.model.norm.",
        "lm_head.": "language_model.lm_head.",
        "model.": "",
    })  # fmt: skip

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return IMAGE_TAG
        raise ValueError("Only image modality is supported")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.config = config
        width = config.vision_config.width
        if not isinstance(width, dict) or "sam_vit_b" not in width or "clip-l-14-224" not in width:
            raise ValueError("DeepSeek-OCR v1 config lacks vision_config.width.sam_vit_b / clip-l-14-224")
        if getattr(config, "tile_tag", "2D") != "2D":
            raise ValueError(f"only tile_tag 2D is supported, got {config.tile_tag!r}")
        with self._mark_tower_model(vllm_config, "image"):
            self.sam_model = build_sam(width)
            self.vision_model = DeepCLIPVisionTransformer(
                config=clip_config(width),
                quant_config=vllm_config.quant_config,
                prefix=maybe_prefix(prefix, "vision_model"),
            )
            self.projector = MlpProjector(config.projector_config)
            n_embed = config.projector_config.n_embed
            self.image_newline = nn.Parameter(torch.zeros(n_embed))
            self.view_seperator = nn.Parameter(torch.zeros(n_embed))  # sic: the checkpoint's name
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config,
                hf_config=config.text_config,
                prefix=maybe_prefix(prefix, "language_model"),
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def _encode_views(self, views: torch.Tensor) -> torch.Tensor:
        """(V, 3, S, S) -> (V, g, g, D) projected features, g = S / 64."""
        sam = self.sam_model(views)
        clip = self.vision_model(views, sam)
        feats = self.projector(torch.cat((clip[:, 1:], sam.flatten(2).permute(0, 2, 1)), dim=-1))
        side = int(feats.shape[1] ** 0.5)
        return feats.view(views.shape[0], side, side, -1)

    def _with_newlines(self, grid: torch.Tensor) -> torch.Tensor:
        """(rows, cols, D) -> (rows * (cols + 1), D), the newline after each row."""
        newline = self.image_newline.to(grid.dtype)[None, None, :].expand(grid.shape[0], 1, grid.shape[-1])
        return torch.cat([grid, newline], dim=1).reshape(-1, grid.shape[-1])

    def _image_features(
        self, view: torch.Tensor, crops: torch.Tensor | None, grid: list[int]
    ) -> torch.Tensor:
        """One image's (N, D) features in v1 layout order."""
        parts = []
        if crops is not None and crops.shape[0] > 0:
            w, h = grid
            local = self._encode_views(crops)  # (w h, q, q, D), row-major crops
            q, dim = local.shape[1], local.shape[-1]
            stitched = local.view(h, w, q, q, dim).permute(0, 2, 1, 3, 4).reshape(h * q, w * q, dim)
            parts.append(self._with_newlines(stitched))
        parts.append(self._with_newlines(self._encode_views(view[None])[0]))
        parts.append(self.view_seperator.to(view.dtype)[None, :])
        return torch.cat(parts)

    def embed_multimodal(self, **kwargs: object) -> list[torch.Tensor] | None:
        pixel_values = kwargs.get("pixel_values")
        if pixel_values is None:
            return None
        grids = torch.as_tensor(kwargs["images_spatial_crop"]).long().tolist()
        crops_all: Any = kwargs.get("images_crop")
        sizes = [w * h if w * h > 1 else 0 for w, h in grids]
        if isinstance(crops_all, torch.Tensor):
            crops_per_image = list(crops_all.split(sizes))
        else:
            crops_per_image = list(crops_all) if crops_all is not None else [None] * len(grids)
        pages, prunes = kwargs.get("rtprune_page"), kwargs.get("rtprune_prune")
        out = []
        for i, grid in enumerate(grids):
            feats = self._image_features(_item(pixel_values, i), crops_per_image[i], grid)
            if pages is not None:
                plan = PagePlan.from_row(_item(pages, i))
                feats = prune_page(feats, plan, decode_prune(_item(prunes, i)))[0]
            out.append(feats)
        return out

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: IntermediateTensors | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ):
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights, mapper=self.hf_to_vllm_mapper)
