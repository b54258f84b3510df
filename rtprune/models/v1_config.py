"""DeepSeek-OCR v1 checkpoints on transformers 5.x: config translation, strict loading, v1-format saving.

transformers 5.23 has no v1 class; its `unlimited_ocr` model is v1-derived and its weight conversion maps
the original v1 key names. Three conditions make it load v1 exactly (see the design notes):
  - config.model_type must be "unlimited_ocr": with the hub's "deepseek_vl_v2" the key renames are
    skipped and transformers loads RANDOM weights with only a warning;
  - every text layer full attention (the default reference sliding window of 128 changes outputs past
    128 tokens), with `sliding_window` still set because the config validator requires it;
  - every size read from the v1 config (language config, vision_config.width), not from defaults.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

V1_MODEL_TYPE = "deepseek_vl_v2"
DEFAULT_IMAGE_TOKEN_ID = 128815
# Real v1 hard-codes these two (its CLIP-L FFN is 4 x 1024; SAM-B's MLP is 4 x width).
CLIP_FFN_DEFAULT = 4096
SAM_MLP_RATIO = 4
SAM_NECK_CHANNELS = 256
# Any int: unused once every layer is full attention, but the config validator rejects None.
UNUSED_SLIDING_WINDOW = 128
# In every v1 checkpoint but never used (v1 feeds CLIP the SAM features); transformers drops it on load.
DEAD_V1_KEY = "model.vision_model.embeddings.patch_embedding.weight"

_TEXT_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
    "moe_intermediate_size", "topk_method", "n_group", "topk_group", "max_position_embeddings",
    "bos_token_id", "eos_token_id",
)  # fmt: skip


class V1LoadError(RuntimeError):
    """A v1 checkpoint did not load exactly (missing, unexpected or mismatched weights, wrong config)."""


def _language_section(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 keeps the LM config under `language_config` and copies it at the top level; prefer the former."""
    lang = dict(raw.get("language_config") or {})
    for key in _TEXT_KEYS + ("first_k_dense_replace", "rope_theta", "rms_norm_eps", "use_mla"):
        if key not in lang and key in raw:
            lang[key] = raw[key]
    return lang


def text_config_dict(raw: dict[str, Any]) -> dict[str, Any]:
    """The UnlimitedOcrTextConfig kwargs for a v1 hub config dict (full attention on every layer)."""
    lang = _language_section(raw)
    if lang.get("use_mla"):
        raise V1LoadError("v1 language config has use_mla=true; DeepSeek-OCR v1 uses plain MHA")
    optional = (
        "n_group",
        "topk_group",
        "topk_method",
        "max_position_embeddings",
        "bos_token_id",
        "eos_token_id",
    )
    missing = [k for k in _TEXT_KEYS if k not in lang and k not in optional]
    if missing:
        raise V1LoadError(f"v1 config lacks language settings {missing}")
    text = {k: lang[k] for k in _TEXT_KEYS if k in lang}
    n_layers = int(text["num_hidden_layers"])
    first_dense = int(lang.get("first_k_dense_replace", 1))
    text |= {
        "hidden_act": "silu",
        "rms_norm_eps": float(lang.get("rms_norm_eps", 1e-6)),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(lang.get("rope_theta", 10000.0))},
        "routed_scaling_factor": float(lang.get("routed_scaling_factor", 1.0)),
        "tie_word_embeddings": False,  # v1 has an untied lm_head
        "layer_types": ["full_attention"] * n_layers,
        "mlp_layer_types": ["dense" if i < first_dense else "sparse" for i in range(n_layers)],
        "sliding_window": UNUSED_SLIDING_WINDOW,
    }
    return text


def vision_config_dict(raw: dict[str, Any]) -> dict[str, Any]:
    """UnlimitedOcrVisionConfig kwargs from v1's `vision_config.width` (SAM-B + CLIP-L sizes)."""
    width = (raw.get("vision_config") or {}).get("width") or {}
    sam, clip = width.get("sam_vit_b"), width.get("clip-l-14-224")
    if not isinstance(sam, dict) or not isinstance(clip, dict):
        raise V1LoadError("v1 config lacks vision_config.width.sam_vit_b / clip-l-14-224")
    sam_cfg = {
        "hidden_size": sam["width"],
        "num_hidden_layers": sam["layers"],
        "num_attention_heads": sam["heads"],
        "global_attn_indexes": list(sam["global_attn_indexes"]),
        "downsample_channels": list(sam["downsample_channels"]),
        "mlp_dim": int(sam.get("mlp_dim", SAM_MLP_RATIO * sam["width"])),
        "output_channels": int(sam.get("neck_channels", SAM_NECK_CHANNELS)),
        "image_size": 1024,
        "patch_size": 16,
        "window_size": 14,
    }
    clip_cfg = {
        "hidden_size": clip["width"],
        "num_hidden_layers": clip["layers"],
        "num_attention_heads": clip["heads"],
        "intermediate_size": int(clip.get("ffn_hidden_size", CLIP_FFN_DEFAULT)),
        "image_size": clip.get("image_size", 224),
        "patch_size": clip.get("patch_size", 14),
    }
    return {"sam_config": sam_cfg, "encoder_config": clip_cfg}


def unlimited_config_from_v1(raw: dict[str, Any]):
    """A v1 hub config.json dict -> UnlimitedOcrConfig with model_type "unlimited_ocr" (the trap guarded)."""
    from transformers import UnlimitedOcrConfig

    model_type = raw.get("model_type")
    if model_type != V1_MODEL_TYPE:
        raise V1LoadError(
            f"not a DeepSeek-OCR v1 config: model_type={model_type!r}, expected {V1_MODEL_TYPE!r}"
        )
    cfg = UnlimitedOcrConfig(
        text_config=text_config_dict(raw),
        vision_config=vision_config_dict(raw),
        image_token_id=int(raw.get("image_token_id", DEFAULT_IMAGE_TOKEN_ID)),
    )
    assert_unlimited(cfg)
    return cfg


def assert_unlimited(cfg: Any) -> None:
    """Refuse a config that would make transformers skip the v1 key renames and load random weights."""
    if getattr(cfg, "model_type", None) != "unlimited_ocr":
        raise V1LoadError(
            f"config.model_type is {getattr(cfg, 'model_type', None)!r}, not 'unlimited_ocr': transformers would "
            "skip the v1 weight renames and load random weights; build the config with unlimited_config_from_v1"
        )
    layer_types = set(cfg.text_config.layer_types)
    if layer_types != {"full_attention"}:
        raise V1LoadError(f"v1 needs full attention on every text layer, got {sorted(layer_types)}")


def read_v1_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise V1LoadError(f"no config.json in {directory}")
    return json.loads(path.read_text())


def check_loading_info(info: dict[str, Any], source: str) -> None:
    """Raise, naming the keys, if transformers reported any missing, unexpected or mismatched weight."""
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        keys = sorted(str(k) for k in (info.get(kind) or ()))
        if keys:
            shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")
            problems.append(f"{kind.replace('_', ' ')}: {shown}")
    if problems:
        raise V1LoadError(f"checkpoint {source} does not match the v1 model exactly; " + "; ".join(problems))


def checkpoint_shapes(directory: str | Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor in the directory's safetensors files (headers only, no data read)."""
    from safetensors import safe_open

    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if index.is_file():  # sharded: only the files the index names (others, e.g. references, are not weights)
        files = sorted({directory / f for f in json.loads(index.read_text())["weight_map"].values()})
    else:
        files = [directory / "model.safetensors"]
    if not all(f.is_file() for f in files):
        raise V1LoadError(f"weights missing in {directory}: expected {[f.name for f in files]}")
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            shapes |= {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    return shapes


def check_checkpoint_keys(directory: str | Path, model: torch.nn.Module) -> None:
    """Account for every v1 key on our own: transformers silently ignores unexpected keys that match
    `lm_head` or `patch_embedding`, so its report alone would let a wrong checkpoint through."""
    found = checkpoint_shapes(directory)
    found.pop(DEAD_V1_KEY, None)
    expected = {k: tuple(t.shape) for k, t in v1_state_dict(model).items()}
    check_loading_info(
        {
            "missing_keys": expected.keys() - found.keys(),
            "unexpected_keys": found.keys() - expected.keys(),
            "mismatched_keys": [
                f"{k} {found[k]} != {expected[k]}"
                for k in expected.keys() & found.keys()
                if found[k] != expected[k]
            ],
        },
        str(directory),
    )


def load_v1_model(directory: str | Path, cfg: Any, dtype: torch.dtype, device: str):
    """UnlimitedOcrForConditionalGeneration with the checkpoint's weights, every one accounted for.

    The key check runs first, against a weightless (meta-device) model and the safetensors headers, so a
    wrong checkpoint fails with the keys named before any weight is read. Weights are cast to `dtype`
    (the fp16 fixture is upcast to fp32); the model is returned in eval mode on `device`.
    """
    from transformers import UnlimitedOcrForConditionalGeneration

    assert_unlimited(cfg)
    with torch.device("meta"):
        check_checkpoint_keys(directory, UnlimitedOcrForConditionalGeneration(cfg))
    model, info = UnlimitedOcrForConditionalGeneration.from_pretrained(
        str(directory), config=cfg, dtype=dtype, output_loading_info=True
    )
    check_loading_info(info, str(directory))
    wrong = {str(p.dtype) for p in model.parameters() if p.dtype != dtype}
    if wrong:
        raise V1LoadError(f"weights of {directory} were not cast to {dtype}: found {sorted(wrong)}")
    return model.to(device).eval()


def v1_config_json(cfg: Any) -> dict[str, Any]:
    """The inverse of unlimited_config_from_v1: an UnlimitedOcrConfig in v1's hub config.json layout."""
    text, sam, clip = cfg.text_config, cfg.vision_config.sam_config, cfg.vision_config.encoder_config
    lang = {k: getattr(text, k) for k in _TEXT_KEYS}
    lang |= {
        "first_k_dense_replace": text.mlp_layer_types.count("dense"),
        "rope_theta": text.rope_parameters["rope_theta"],
        "rms_norm_eps": text.rms_norm_eps,
        "routed_scaling_factor": text.routed_scaling_factor,
        "use_mla": False,
        # plain multi-head attention, said as v1's hub config says it (vLLM reads a rank as MLA)
        "kv_lora_rank": None,
        "q_lora_rank": None,
        "qk_nope_head_dim": 0,
        "qk_rope_head_dim": 0,
        "v_head_dim": 0,
        "lm_head": True,
        "architectures": ["DeepseekV2ForCausalLM"],
    }
    if text.mlp_layer_types != ["dense"] * lang["first_k_dense_replace"] + ["sparse"] * (
        text.num_hidden_layers - lang["first_k_dense_replace"]
    ):
        raise ValueError(f"v1 needs dense layers first, got {text.mlp_layer_types}")
    width = {
        "sam_vit_b": {
            "width": sam.hidden_size, "layers": sam.num_hidden_layers, "heads": sam.num_attention_heads,
            "global_attn_indexes": list(sam.global_attn_indexes),
            "downsample_channels": list(sam.downsample_channels), "mlp_dim": sam.mlp_dim,
            "neck_channels": sam.output_channels,
        },
        "clip-l-14-224": {
            "width": clip.hidden_size, "layers": clip.num_hidden_layers, "heads": clip.num_attention_heads,
            "image_size": clip.image_size, "patch_size": clip.patch_size,
            "ffn_hidden_size": clip.intermediate_size,
        },
    }  # fmt: skip
    projector = {
        "input_dim": sam.downsample_channels[-1] + clip.hidden_size,
        "n_embed": text.hidden_size,
        "projector_type": "linear",
        "model_type": "mlp_projector",
    }
    return {
        "model_type": V1_MODEL_TYPE,
        "architectures": ["DeepseekOCRForCausalLM"],
        "language_config": lang,
        "vision_config": {"model_type": "vision", "model_name": "deeplip_b_l", "width": width},
        "projector_config": projector,
        "tile_tag": "2D",
        "global_view_pos": "head",
        "image_token_id": cfg.image_token_id,
        **{k: v for k, v in lang.items() if k != "architectures"},  # v1 copies the LM settings up here
    }


def _v1_sam_name(rest: str) -> str:
    """Native SAM encoder names -> v1 `sam_model.*` names."""
    rest = re.sub(r"^layers\.(\d+)\.layer_norm([12])\.", r"blocks.\1.norm\2.", rest)
    rest = re.sub(r"^layers\.(\d+)\.", r"blocks.\1.", rest)
    for native, v1 in (
        ("patch_embed.projection.", "patch_embed.proj."), ("neck.conv1.", "neck.0."),
        ("neck.layer_norm1.", "neck.1."), ("neck.conv2.", "neck.2."), ("neck.layer_norm2.", "neck.3."),
        ("proj.conv1.", "net_2."), ("proj.conv2.", "net_3."),
    ):  # fmt: skip
        if rest.startswith(native):
            return v1 + rest[len(native) :]
    return rest


def v1_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The native model's weights under the original v1 key names (inverse of transformers' conversion).

    Tensors are views where possible (no copy of the experts), so this is cheap on a full-size model.

    Fused experts (E, 2I, H) / (E, H, I) are split back into per-expert gate/up/down (I, H) / (H, I);
    CLIP's q/k/v are concatenated into qkv_proj (3C, C).
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach()
        if name.startswith("model.vision_tower.sam_encoder."):
            out["model.sam_model." + _v1_sam_name(name.removeprefix("model.vision_tower.sam_encoder."))] = t
        elif name.startswith("model.vision_tower.vision_encoder."):
            rest = name.removeprefix("model.vision_tower.vision_encoder.").replace(
                "encoder.", "transformer.", 1
            )
            m = re.match(r"(.*self_attn)\.([qkv])_proj\.(weight|bias)$", rest)
            if m:
                qkv.setdefault(f"model.vision_model.{m[1]}.qkv_proj.{m[3]}", {})[m[2]] = t
            else:
                out["model.vision_model." + rest] = t
        elif name.startswith("model.multi_modal_projector."):
            out["model.projector.layers." + name.rsplit(".", 1)[1]] = t
        elif name == "model.view_separator":
            out["model.view_seperator"] = t  # sic: v1's spelling
        elif name.startswith("model.language_model."):
            out.update(_v1_text_weights(name.removeprefix("model.language_model."), t))
        else:
            out[name] = t  # model.image_newline, lm_head.weight
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def _v1_text_weights(rest: str, t: torch.Tensor) -> dict[str, torch.Tensor]:
    m = re.match(r"(layers\.\d+\.mlp\.experts)\.(gate_up_proj|down_proj)$", rest)
    if not m:
        return {"model." + rest: t}
    prefix, out = "model." + m[1], {}
    for e in range(t.shape[0]):
        if m[2] == "down_proj":
            out[f"{prefix}.{e}.down_proj.weight"] = t[e]
        else:
            gate, up = t[e].chunk(2, dim=0)
            out[f"{prefix}.{e}.gate_proj.weight"] = gate
            out[f"{prefix}.{e}.up_proj.weight"] = up
    return out


def save_v1_checkpoint(model: torch.nn.Module, config: Any, directory: str | Path) -> Path:
    """Write `model` as an original v1 hub checkpoint: config.json in v1's layout + model.safetensors."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(v1_config_json(config), indent=1))
    tensors = {k: t.contiguous() for k, t in v1_state_dict(model).items()}
    clip = config.vision_config.encoder_config
    # v1 ships CLIP's pixel patch embedding although it never runs (CLIP is fed SAM features); write zeros so
    # the key set is the real checkpoint's.
    tensors[DEAD_V1_KEY] = torch.zeros(clip.hidden_size, 3, clip.patch_size, clip.patch_size)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory
