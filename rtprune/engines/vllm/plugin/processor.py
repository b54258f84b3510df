"""vLLM front end for DeepSeek-OCR v1 with RTPrune: v1 preprocessing per mode, placeholder count = kept count.

Runs in vLLM's front-end process. Each image becomes, as in the transformers engine (rtprune.models.
v1_preprocess): the global view `pixel_values` (S x S), Gundam crops `images_crop` (640 x 640, row-major),
`images_spatial_crop` [w, h], plus `rtprune_page` (pages.PAGE_FIELDS) and `rtprune_prune` (the request's
PruneConfig as JSON bytes). The prompt's `<image>` is replaced by exactly `n_kept` placeholders: the model
prunes to that count.

Request settings (mm_processor_kwargs): `rtprune_mode` (tiny | small | base | large | gundam) and
`rtprune_prune` (PruneConfig JSON; none = no pruning). Engine-wide defaults go in LLM(mm_processor_kwargs=...).

Pre-processed views: an image item may instead be a dict of tensors {"pixel_values": (B, 3, S, S),
"images_crop": (C, 3, 640, 640), "images_spatial_crop": (B, 2)} (needs enable_mm_embeds=True). They go to
the encoder as given and are never pruned: for pixels made outside PIL (conformance fixtures).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from transformers import BatchFeature
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import DictEmbeddingItems, MultiModalDataItems, MultiModalDataParser
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)
from vllm.transformers_utils.configs.deepseek_vl2 import DeepseekVLV2Config

from rtprune.api import PruneConfig
from rtprune.deepseek.v1_preprocess import (
    CROP_PX,
    MAX_CROPS,
    MIN_CROPS,
    PX_PER_TOKEN,
    candidate_grids,
    count_tokens,
    mode_spec,
    prepare_views,
)
from rtprune.engines.vllm.plugin.page_plan import encode_prune, plan_page

IMAGE_TAG = "<image>"
MODE_KWARG, PRUNE_KWARG = "rtprune_mode", "rtprune_prune"
DEFAULT_MODE = "gundam"  # the mode DeepSeek's own vLLM script runs
VIEW_FIELDS = ("pixel_values", "images_crop", "images_spatial_crop")


def fields_config(data: Mapping[str, Any]) -> dict[str, MultiModalFieldConfig]:
    """How each per-image tensor splits into items: crops by each image's w x h (0 without crops)."""
    grids = torch.as_tensor(data.get("images_spatial_crop", torch.empty((0, 2), dtype=torch.long)))
    crops = torch.where((grids[:, 0] > 1) | (grids[:, 1] > 1), grids.prod(dim=-1), 0)
    fields = {
        "pixel_values": MultiModalFieldConfig.batched("image"),
        "images_spatial_crop": MultiModalFieldConfig.batched("image", keep_on_cpu=True),
        "images_crop": MultiModalFieldConfig.flat_from_sizes("image", crops),
    }
    for name in ("rtprune_page", "rtprune_prune"):
        if name in data:
            fields[name] = MultiModalFieldConfig.batched("image", keep_on_cpu=True)
    return fields


def max_tokens_any_mode() -> int:
    """The most placeholders one image can take in any mode (Gundam's worst crop grid; Large without crops
    and the smaller modes stay below it)."""
    grids = candidate_grids(MIN_CROPS, MAX_CROPS) + [(1, 1)]
    return max(
        count_tokens(CROP_PX * w, CROP_PX * h, mode_spec(m)) for m in ("large", "gundam") for w, h in grids
    )


def view_tokens(pixel_values: torch.Tensor, grid: Sequence[int]) -> int:
    """Placeholders of pre-processed views: g (g + 1) + 1, plus (10 w + 1) 10 h with crops."""
    g = int(pixel_values.shape[-1]) // PX_PER_TOKEN
    w, h = int(grid[0]), int(grid[1])
    q = CROP_PX // PX_PER_TOKEN
    return g * (g + 1) + 1 + ((q * w + 1) * (q * h) if w * h > 1 else 0)


class RtpruneOCRDataParser(MultiModalDataParser):
    """Images as PIL pages, or a dict of pre-processed views (VIEW_FIELDS)."""

    embedding_fields = {"image": {"pixel_values": "values", "images_crop": "values",
                                  "images_spatial_crop": "metadata"}}  # fmt: skip

    def _parse_image_data(self, data: Any):
        if isinstance(data, dict):
            return DictEmbeddingItems(
                data, modality="image", required_fields=set(VIEW_FIELDS), fields_factory=fields_config
            )
        return super()._parse_image_data(data)


class RtpruneOCRProcessingInfo(BaseProcessingInfo):
    def get_hf_config(self):
        return self.ctx.get_hf_config(DeepseekVLV2Config)

    def get_hf_processor(self, **kwargs: object):
        raise NotImplementedError(
            "DeepSeek-OCR v1 pages are processed by rtprune.engines.vllm.plugin, not an HF processor"
        )

    def get_supported_mm_processor_kwargs(self) -> dict[str, set[str]]:
        return {}

    def get_data_parser(self) -> MultiModalDataParser:
        return RtpruneOCRDataParser(
            expected_hidden_size=self._get_expected_hidden_size(),
            allow_missing_mm_embeddings=self.allow_missing_mm_embeddings,
        )

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": None}

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        return {"image": max_tokens_any_mode()}

    def image_token_id(self) -> int:
        """The config's image_token_id when it has one (the fixture: 815), else the tokenizer's <image>."""
        token_id = getattr(self.get_hf_config(), "image_token_id", None)
        if token_id is None:
            token_id = self.get_tokenizer().get_vocab()[IMAGE_TAG]
        return int(token_id)

    def settings(self, request_kwargs: Mapping[str, object]) -> tuple[str, PruneConfig | None]:
        """(mode, prune) from the request's kwargs over the engine's defaults."""
        merged = self.ctx.get_merged_mm_kwargs(request_kwargs)
        default_mode = getattr(self.get_hf_config(), "rtprune_mode", DEFAULT_MODE)
        mode = str(merged.get(MODE_KWARG) or default_mode)
        mode_spec(mode)  # unknown modes fail here, for this request
        blob = merged.get(PRUNE_KWARG)
        prune = None if blob in (None, "") else PruneConfig(**_json_dict(blob))
        return mode, prune


def _json_dict(blob: object) -> dict[str, Any]:
    value = json.loads(blob) if isinstance(blob, str | bytes) else blob
    if not isinstance(value, dict):
        raise ValueError(f"{PRUNE_KWARG} must be a PruneConfig as a JSON object, got {blob!r}")
    return dict(value)


class RtpruneOCRDummyInputsBuilder(BaseDummyInputsBuilder[RtpruneOCRProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return IMAGE_TAG * mm_counts.get("image", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int], mm_options: Any = None):
        # a 1 x 9 crop page: Gundam's largest count (profiling sizes the encoder budget from it)
        return {
            "image": self._get_dummy_images(
                width=CROP_PX, height=CROP_PX * MAX_CROPS, num_images=mm_counts.get("image", 0)
            )
        }


class RtpruneOCRMultiModalProcessor(BaseMultiModalProcessor[RtpruneOCRProcessingInfo]):
    def get_dummy_inputs(self, seq_len: int, mm_counts: Mapping[str, int], mm_options: Any):
        inputs = super().get_dummy_inputs(seq_len, mm_counts, mm_options)
        return dataclasses.replace(inputs, hf_processor_mm_kwargs={MODE_KWARG: "gundam"})

    def _call_hf_processor(
        self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]
    ) -> BatchFeature:
        mode, prune = self.info.settings(hf_kwargs)
        spec = mode_spec(mode)
        views, crops, grids, rows, prunes = [], [], [], [], []
        for image in cast(list, hf_data.get("images", [])):
            width_px, height_px = image.size
            if width_px < 1 or height_px < 1:
                raise ValueError(f"page of {width_px} x {height_px} px has no pixels")
            inputs, gray = prepare_views(image, spec)
            plan = plan_page(width_px, height_px, mode, prune or PruneConfig(method="none"), gray)
            views.append(inputs["pixel_values"][0])
            if "pixel_values_local" in inputs:
                crops.append(inputs["pixel_values_local"])
            grids.append(list(inputs.get("patches_grid", [1, 1])))
            rows.append(plan.row())
            prunes.append(encode_prune(prune or PruneConfig(method="none")))
        width = max((p.numel() for p in prunes), default=0)
        return BatchFeature(
            {
                "pixel_values": torch.stack(views),
                "images_crop": torch.cat(crops) if crops else torch.zeros((0, 3, CROP_PX, CROP_PX)),
                "images_spatial_crop": torch.tensor(grids, dtype=torch.long),
                "rtprune_page": torch.tensor(rows, dtype=torch.long),
                # padded with spaces (valid JSON whitespace) so one request's images stack
                "rtprune_prune": torch.stack(
                    [torch.nn.functional.pad(p, (0, width - p.numel()), value=32) for p in prunes]
                ),
            }
        )

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        return fields_config(hf_inputs)

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        image_token_id = self.info.image_token_id()

        def replacement(item_idx: int) -> list[int]:
            item = out_mm_kwargs["image"][item_idx]
            if "rtprune_page" in item:
                n = int(item["rtprune_page"].data[-1])  # n_kept
            else:
                n = view_tokens(item["pixel_values"].data, item["images_spatial_crop"].data)
            return [image_token_id] * n

        return [PromptReplacement(modality="image", target=[image_token_id], replacement=replacement)]
