"""DeepSeek-OCR v1 adapter: conformance with the original v1 code, strict loading, layouts, preprocessing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rtprune.deepseek.layout import TokenLayout
from rtprune.deepseek.v1_preprocess import MODES, count_tokens, crop_grid
from rtprune.models.base import PreparedPage
from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend, V1LoadError, save_v1_checkpoint
from rtprune.models.tiny_tokenizer import build_tiny_tokenizer
from tests.fixture_pixels import fixture_view

REPO = Path(__file__).resolve().parents[2]
# <repo>/../shared in the main checkout; a git worktree one level deeper sees it at <repo>/../../shared.
_CANDIDATES = [
    base / "shared" / "fixtures" / "deepseek-ocr-v1-tiny" for base in (REPO.parent, REPO.parent.parent)
]
FIXTURE = next((c for c in _CANDIDATES if (c / "model.safetensors").is_file()), _CANDIDATES[0])
needs_fixture = pytest.mark.skipif(
    not (FIXTURE / "model.safetensors").is_file(),
    reason=f"v1 conformance fixture not found at {FIXTURE} (a checkout without ../shared/fixtures)",
)
# mode name in the fixture -> (global view S, crop grid (w, h) or None)
FIXTURE_MODES = {
    "tiny512": (512, None),
    "small640": (640, None),
    "base1024": (1024, None),
    "large1280": (1280, None),
    "gundam1024_w3h2": (1024, (3, 2)),
}
FIXTURE_TO_MODE = {"tiny512": "tiny", "small640": "small", "base1024": "base", "large1280": "large",
                   "gundam1024_w3h2": "gundam"}  # fmt: skip
TOLERANCE = 1e-4


def fixture_inputs(size: int, grid: tuple[int, int] | None) -> dict:
    """One page's model_inputs: the global view (1, 3, S, S), crops (w h, 3, 640, 640) when gridded."""
    inputs = {"pixel_values": fixture_view(0, size)[None]}
    if grid is not None:
        w, h = grid
        views = [fixture_view(1 + r * w + c, 640) for r in range(h) for c in range(w)]
        inputs["pixel_values_local"] = torch.stack(views)  # row-major crops
    return inputs


@torch.no_grad()
def logits_and_greedy(model, input_ids: torch.Tensor, feats: list[torch.Tensor], steps: int = 10):
    """Prefill with precomputed visual features (the engine's path), then steps - 1 cached argmax steps.

    Returns (logits (L, V) of the prefill, the `steps` greedy tokens).
    """
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    mask = torch.ones_like(input_ids)
    encoded = {"image": BaseModelOutputWithPooling(pooler_output=feats)}
    out = model(input_ids=input_ids, attention_mask=mask, use_cache=True, mm_encoder_outputs=encoded)
    logits, cache = out.logits[0], out.past_key_values
    tokens = [int(logits[-1].argmax())]
    for _ in range(steps - 1):
        mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], dim=1)
        step = model(
            input_ids=torch.tensor([[tokens[-1]]]), attention_mask=mask, past_key_values=cache, use_cache=True
        )
        cache = step.past_key_values
        tokens.append(int(step.logits[0, -1].argmax()))
    return logits, tokens


@pytest.fixture(scope="module")
def fixture_backend() -> DeepseekOcrV1Backend:
    return DeepseekOcrV1Backend.from_pretrained(str(FIXTURE), tokenizer=build_tiny_tokenizer(1024, 815))


@pytest.fixture(scope="module")
def fixture_refs() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "reference.safetensors"))


@needs_fixture
@pytest.mark.parametrize("mode", list(FIXTURE_MODES))
def test_fixture_conformance(mode, fixture_backend, fixture_refs):
    """Logits within 1e-4 (relative to max|ref|) and identical greedy tokens, as the original v1 code."""
    size, grid = FIXTURE_MODES[mode]
    ref = {k.split(".", 1)[1]: v for k, v in fixture_refs.items() if k.startswith(mode + ".")}
    input_ids = ref["input_ids"].long().reshape(1, -1)
    n_img = int((input_ids == fixture_backend.image_token_id).sum())
    w, h = grid or (1, 1)
    # A page of 640w x 640h px gets exactly this crop grid in Gundam; our count must be the fixture's.
    page = (640 * w, 640 * h) if grid else (size, size)
    assert n_img == count_tokens(*page, MODES[FIXTURE_TO_MODE[mode]])
    inputs = fixture_inputs(size, grid)
    if grid is not None:  # PreparedPage holds one page's inputs; encode collates them into lists
        inputs |= {"num_local_patches": grid[0] * grid[1], "patches_grid": list(grid)}
    layout = count_tokens(*page, MODES[FIXTURE_TO_MODE[mode]])
    page_in = PreparedPage(
        inputs, TokenLayout(layout, torch.zeros(layout, dtype=torch.bool)), torch.zeros(1, 1)
    )
    feats = fixture_backend.encode([page_in])
    logits, tokens = logits_and_greedy(fixture_backend.model, input_ids, feats)
    last_ref, at_ref = ref["logits_last"].float(), ref["logits_at"].float()
    err_last = float((logits[-1] - last_ref).abs().max() / last_ref.abs().max())
    err_at = float((logits[ref["positions"].long()] - at_ref).abs().max() / at_ref.abs().max())
    print(f"\n{mode}: rel err logits_last={err_last:.2e} logits_at={err_at:.2e}")
    assert err_last <= TOLERANCE and err_at <= TOLERANCE
    assert tokens == ref["greedy10"].tolist()


# ---------------------------------------------------------------- tiny random model, saved in v1 format

ALL_MODES = ("tiny", "small", "base", "large", "gundam")
A4_PORTRAIT, A4_LANDSCAPE = (1240, 1754), (1754, 1240)


@pytest.fixture(scope="module")
def tiny() -> DeepseekOcrV1Backend:
    return DeepseekOcrV1Backend.tiny_random(mode="large", seed=0)


def with_mode(backend: DeepseekOcrV1Backend, mode: str) -> DeepseekOcrV1Backend:
    return DeepseekOcrV1Backend(backend.model, backend.tokenizer, model_id=backend.model_id, mode=mode)


@pytest.fixture(scope="module")
def tiny_ckpt(tiny, tmp_path_factory) -> Path:
    return save_v1_checkpoint(tiny.model, tiny.model.config, tmp_path_factory.mktemp("v1") / "tiny")


def text_page(width: int, height: int, seed: int = 0) -> Image.Image:
    """A white page with dark random 'text' blocks, so views and crops differ from each other."""
    rng = np.random.default_rng(seed)
    arr = np.full((height, width, 3), 255, dtype=np.uint8)
    for _ in range(40):
        x, y = rng.integers(0, width - 60), rng.integers(0, height - 12)
        arr[y : y + 10, x : x + int(rng.integers(20, 60))] = rng.integers(0, 90, size=3)
    return Image.fromarray(arr)


def copy_checkpoint(src: Path, dst: Path, edit) -> Path:
    """A copy of a v1 checkpoint with its tensors dict passed through `edit`."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    tensors = load_file(str(src / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    return dst


@torch.no_grad()
def prompt_logits(backend: DeepseekOcrV1Backend, image: Image.Image) -> torch.Tensor:
    """Prefill logits (L, V) of the default prompt for one page, through prepare/encode/prompt_ids."""
    page = backend.prepare(image)
    feats = backend.encode([page])
    logits, _ = logits_and_greedy(
        backend.model, torch.tensor([backend.prompt_ids(page.layout.n_tokens)]), feats, 1
    )
    return logits


def test_saved_checkpoint_uses_original_v1_key_names(tiny_ckpt):
    from safetensors import safe_open

    cfg = json.loads((tiny_ckpt / "config.json").read_text())
    assert cfg["model_type"] == "deepseek_vl_v2" and "sam_vit_b" in cfg["vision_config"]["width"]
    with safe_open(str(tiny_ckpt / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())  # noqa: SIM118
    for key in (
        "model.sam_model.blocks.0.attn.qkv.weight",
        "model.sam_model.net_3.weight",
        "model.view_seperator",
        "model.vision_model.transformer.layers.0.self_attn.qkv_proj.weight",
        "model.projector.layers.weight",
        "model.layers.1.mlp.experts.3.gate_proj.weight",
        "model.embed_tokens.weight",
        "lm_head.weight",
    ):
        assert key in keys, key
    if (FIXTURE / "model.safetensors").is_file():  # same key patterns as a checkpoint the v1 code wrote
        with safe_open(str(FIXTURE / "model.safetensors"), framework="pt") as f:
            fixture_keys = set(f.keys())  # noqa: SIM118
        pattern = lambda ks: {re.sub(r"\.\d+\.", ".N.", k) for k in ks}  # noqa: E731
        assert pattern(keys) == pattern(fixture_keys)


def test_v1_checkpoint_round_trip_gives_the_same_logits(tiny, tiny_ckpt):
    loaded = DeepseekOcrV1Backend.from_pretrained(str(tiny_ckpt), mode="gundam", tokenizer=tiny.tokenizer)
    page = text_page(1300, 700)  # a 2 x 1 crop grid: the full path (crops, global, separator), kept cheap
    before, after = prompt_logits(with_mode(tiny, "gundam"), page), prompt_logits(loaded, page)
    assert before.abs().max() > 0
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    assert loaded.model_id == str(tiny_ckpt) and not loaded.model.training


def test_from_pretrained_casts_weights_to_the_requested_dtype(tiny, tiny_ckpt):
    loaded = DeepseekOcrV1Backend.from_pretrained(
        str(tiny_ckpt), dtype=torch.bfloat16, tokenizer=tiny.tokenizer
    )
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize(
    ("name", "edit", "named_key"),
    [
        (
            "missing",
            lambda t: t.pop("model.layers.0.mlp.up_proj.weight"),
            "model.layers.0.mlp.up_proj.weight",
        ),
        (
            "extra",
            lambda t: t.update({"model.layers.0.mlp.extra.weight": torch.zeros(2)}),
            "mlp.extra.weight",
        ),
        # transformers itself ignores unexpected keys matching `lm_head`; ours must not
        ("extra_ignored", lambda t: t.update({"lm_head.bias": torch.zeros(2)}), "lm_head.bias"),
        ("shape", lambda t: t.update({"model.norm.weight": torch.ones(3)}), "model.norm.weight"),
    ],
)
def test_strict_loading_fails_naming_the_key(tiny, tiny_ckpt, tmp_path, name, edit, named_key):
    broken = copy_checkpoint(tiny_ckpt, tmp_path / name, edit)
    with pytest.raises(V1LoadError) as err:
        DeepseekOcrV1Backend.from_pretrained(str(broken), tokenizer=tiny.tokenizer)
    assert named_key in str(err.value)


def test_model_type_trap_never_loads_random_weights(tiny_ckpt):
    """A config read as-is keeps model_type deepseek_vl_v2: transformers then skips the v1 renames."""
    from transformers import UnlimitedOcrConfig, UnlimitedOcrForConditionalGeneration

    from rtprune.models.v1_config import check_loading_info, load_v1_model, read_v1_config

    raw = read_v1_config(tiny_ckpt)
    trap = UnlimitedOcrConfig.from_dict(raw)
    assert trap.model_type == "deepseek_vl_v2"
    with pytest.raises(V1LoadError, match="random weights"):
        load_v1_model(tiny_ckpt, trap, dtype=torch.float32, device="cpu")
    # Even past our guard, transformers' own report on that load is caught by the strict check.
    _, info = UnlimitedOcrForConditionalGeneration.from_pretrained(
        str(tiny_ckpt), config=trap, output_loading_info=True
    )
    with pytest.raises(V1LoadError, match="missing keys"):
        check_loading_info(info, str(tiny_ckpt))


def test_non_v1_config_and_unreachable_model_fail_clearly(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deepseek_ocr2"}))
    with pytest.raises(V1LoadError, match="not a DeepSeek-OCR v1 config"):
        DeepseekOcrV1Backend.from_pretrained(str(tmp_path))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(V1LoadError, match="no-such-org/no-such-v1-model.*local directory"):
        DeepseekOcrV1Backend.from_pretrained("no-such-org/no-such-v1-model")


# ---------------------------------------------------------------- layouts: counts and protected tokens


@pytest.mark.parametrize("mode", ALL_MODES)
def test_counts_agree_and_protected_tokens_are_the_models_newlines(tiny, mode):
    backend = with_mode(tiny, mode)
    sizes = [A4_PORTRAIT, A4_LANDSCAPE]
    pages = [backend.prepare(text_page(w, h, seed=i)) for i, (w, h) in enumerate(sizes)]
    feats = backend.encode(pages)
    newline_emb, sep_emb = backend.model.model.image_newline, backend.model.model.view_separator
    for (w, h), page, f in zip(sizes, pages, feats, strict=True):
        ids = backend.prompt_ids(page.layout.n_tokens)
        n = page.layout.n_tokens
        assert ids.count(backend.image_token_id) == f.shape[0] == n == backend.visual_tokens(w, h)
        is_newline = (f == newline_emb).all(-1)
        is_sep = (f == sep_emb).all(-1)
        assert torch.equal(is_newline, page.layout.newline)
        assert torch.equal(is_newline | is_sep, page.layout.protected)
        assert is_sep.nonzero().flatten().tolist() == [n - 1]
        assert page.layout.token_boxes.shape == (n, 4) and page.layout.padding.shape == (n,)
        assert torch.isnan(page.layout.token_boxes[page.layout.protected]).all()
        assert not torch.isnan(page.layout.token_boxes[~page.layout.protected]).any()


def test_prompt_ids_follow_the_plain_template(tiny):
    ids = tiny.prompt_ids(5)
    assert ids[:6] == [tiny.tokenizer.bos_token_id] + [tiny.image_token_id] * 5
    assert tiny.tokenizer.decode(ids[6:]) == "\n<|grounding|>Convert the document to markdown."
    free = DeepseekOcrV1Backend(tiny.model, tiny.tokenizer, model_id="x", prompt="<image>\nFree OCR.")
    assert tiny.tokenizer.decode(free.prompt_ids(2)[3:]) == "\nFree OCR."


def test_gundam_batch_of_different_grids_equals_singles(tiny):
    backend = with_mode(tiny, "gundam")
    images = [text_page(1300, 700, seed=1), text_page(600, 500, seed=2), text_page(700, 1300, seed=3)]
    pages = [backend.prepare(im) for im in images]
    assert [p.meta.get("crop_grid") for p in pages] == [(2, 1), None, (1, 2)]
    batched = backend.encode(pages)
    for page, got in zip(pages, batched, strict=True):
        torch.testing.assert_close(got, backend.encode([page])[0], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- v1 preprocessing rules


@pytest.mark.parametrize(
    ("size", "grid"),
    [
        ((600, 500), (1, 1)),  # within 640 x 640: no crops
        (A4_PORTRAIT, (2, 3)),
        (A4_LANDSCAPE, (3, 2)),
        ((1920, 1280), (3, 2)),
        ((2000, 500), (4, 1)),
        ((500, 5000), (1, 9)),  # never more than 9 crops
        ((1000, 1000), (2, 2)),  # square tie (2,2)/(3,3): too few pixels for 3 x 3
        ((2000, 2000), (3, 3)),  # ... enough pixels: the larger grid
    ],
)
def test_gundam_crop_grid_follows_v1(size, grid):
    assert crop_grid(*size) == grid


@pytest.mark.parametrize(
    ("mode", "size"), [("large", A4_PORTRAIT), ("base", A4_LANDSCAPE), ("gundam", A4_PORTRAIT)]
)
def test_padding_keeps_aspect_and_marks_padded_tokens(tiny, mode, size):
    backend = with_mode(tiny, mode)
    page = backend.prepare(Image.new("RGB", size, (255, 255, 255)))
    s, g = MODES[mode].size_px, MODES[mode].size_px // 64
    gray = page.image_gray
    assert gray.shape == (s, s) and page.model_inputs["pixel_values"].shape == (1, 3, s, s)
    # The white page keeps its aspect ratio inside the mid-grey (127) square.
    white = (gray > 0.99).float()
    cols, rows = int(white.max(0).values.sum()), int(white.max(1).values.sum())
    assert abs(cols / rows - size[0] / size[1]) < 0.01 and max(cols, rows) == s
    assert torch.allclose(gray[white == 0], torch.tensor(127 / 255))
    # Pixels: (x / 255 - 0.5) / 0.5, so white is 1 and the pad colour is 127/127.5 - 1.
    px = page.model_inputs["pixel_values"][0]
    assert px.max() == 1.0 and torch.isclose(px.min(), torch.tensor(127 / 127.5 - 1))
    valid = int(g * min(size) / max(size))
    lay = page.layout
    glob = slice(lay.n_tokens - 1 - g * (g + 1), lay.n_tokens - 1)
    # A cell is page content when its centre is: int(g r) or int(g r) + 1 lines, as the edge cells fall.
    n_valid = int((~lay.padding[glob] & ~lay.newline[glob]).sum())
    assert n_valid % g == 0 and n_valid // g in (valid, valid + 1)
    assert not lay.padding[: glob.start].any()  # crops cover the page only
    # Every padded cell is grey, every other global cell holds page pixels at its centre.
    for box, pad in zip(
        lay.token_boxes[glob][~lay.newline[glob]], lay.padding[glob][~lay.newline[glob]], strict=True
    ):
        cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
        assert (gray[cy, cx] < 0.99) == bool(pad)


@pytest.mark.parametrize("mode", ["tiny", "small"])
def test_tiny_and_small_stretch_the_page_as_v1_does(tiny, mode):
    page = with_mode(tiny, mode).prepare(Image.new("RGB", A4_PORTRAIT, (255, 255, 255)))
    s = MODES[mode].size_px
    assert page.image_gray.shape == (s, s) and bool((page.image_gray > 0.99).all())
    assert not page.layout.padding.any()


def test_gundam_crops_are_row_major_and_token_boxes_point_at_their_crop(tiny):
    """A 3 x 2 page of distinct grey blocks: crop k must be block (k // 3, k % 3), and each crop token's
    box centre must fall on that block in image_gray."""
    levels = [[20, 60, 100], [140, 180, 220]]
    arr = np.zeros((1280, 1920, 3), dtype=np.uint8)
    for r in range(2):
        for c in range(3):
            arr[r * 640 : (r + 1) * 640, c * 640 : (c + 1) * 640] = levels[r][c]
    page = with_mode(tiny, "gundam").prepare(Image.fromarray(arr))
    local = page.model_inputs["pixel_values_local"]
    assert page.model_inputs["patches_grid"] == [3, 2] and local.shape == (6, 3, 640, 640)
    for k in range(6):
        level = levels[k // 3][k % 3]
        assert torch.allclose(local[k].mean(), torch.tensor(level / 127.5 - 1), atol=1e-3)
    lay, gray = page.layout, page.image_gray
    n_local = (10 * 3 + 1) * (10 * 2)
    for i in torch.nonzero(~lay.newline[:n_local]).flatten().tolist():
        row, col = divmod(i, 31)
        box = lay.token_boxes[i]
        cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
        assert abs(float(gray[cy, cx]) * 255 - levels[row // 10][col // 10]) < 1.5


def test_config_translation_reads_v1_sizes_and_forces_full_attention(tiny):
    """A v1 config.json with the real model's sizes translates to the values the design notes list."""
    from rtprune.models.v1_config import unlimited_config_from_v1, v1_config_json

    raw = v1_config_json(tiny.model.config)
    real_lm = {"hidden_size": 1280, "num_hidden_layers": 12, "num_attention_heads": 10, "num_key_value_heads": 10,
               "intermediate_size": 6848, "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
               "moe_intermediate_size": 896, "vocab_size": 129280, "first_k_dense_replace": 1}  # fmt: skip
    raw["language_config"] |= real_lm
    raw |= real_lm
    raw.pop("image_token_id")  # the real config has none: v1's id is 128815
    raw["vision_config"]["width"] = {
        "sam_vit_b": {"width": 768, "layers": 12, "heads": 12, "global_attn_indexes": [2, 5, 8, 11],
                      "downsample_channels": [512, 1024]},
        "clip-l-14-224": {"width": 1024, "layers": 24, "heads": 16, "image_size": 224, "patch_size": 14},
    }  # fmt: skip
    cfg = unlimited_config_from_v1(raw)
    text, sam, clip = cfg.text_config, cfg.vision_config.sam_config, cfg.vision_config.encoder_config
    assert cfg.model_type == "unlimited_ocr" and cfg.image_token_id == 128815
    assert text.layer_types == ["full_attention"] * 12 and text.sliding_window is not None
    assert text.mlp_layer_types == ["dense"] + ["sparse"] * 11
    assert (text.hidden_size, text.intermediate_size, text.moe_intermediate_size) == (1280, 6848, 896)
    assert (text.n_routed_experts, text.num_experts_per_tok, text.vocab_size) == (64, 6, 129280)
    assert text.rope_parameters["rope_theta"] == 10000.0 and text.rms_norm_eps == 1e-6
    assert not text.tie_word_embeddings and text.routed_scaling_factor == 1.0
    assert (sam.hidden_size, sam.num_hidden_layers, sam.mlp_dim, sam.output_channels) == (768, 12, 3072, 256)
    assert list(sam.global_attn_indexes) == [2, 5, 8, 11] and list(sam.downsample_channels) == [512, 1024]
    assert (clip.hidden_size, clip.num_hidden_layers, clip.intermediate_size, clip.hidden_act) == (
        1024, 24, 4096, "quick_gelu")  # fmt: skip


def test_tiny_random_is_seeded_and_labelled(tiny):
    again, other = DeepseekOcrV1Backend.tiny_random(seed=0), DeepseekOcrV1Backend.tiny_random(seed=1)
    w = "model.language_model.layers.1.mlp.experts.gate_up_proj"
    assert torch.equal(again.model.state_dict()[w], tiny.model.state_dict()[w])
    assert not torch.equal(other.model.state_dict()[w], tiny.model.state_dict()[w])
    assert tiny.model_id == "tiny-random-v1" and tiny.mode == "large" and not tiny.model.training
