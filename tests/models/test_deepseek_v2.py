"""DeepSeek-OCR-2 adapter: token layout, preprocessing and strict loading, on a tiny random model."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from rtprune.models.deepseek_v2 import DeepseekOcr2Backend


@pytest.mark.parametrize(
    ("size", "tiles"),
    [
        ((700, 500), 0),
        ((1000, 500), 2),
        ((1654, 2339), 6),
        ((2339, 1654), 6),
        ((768, 768), 0),
        ((769, 300), 3),
    ],
)
def test_layout_follows_the_processor_tiling(tiny_v2, size, tiles):
    page = tiny_v2.prepare(Image.new("RGB", size, "white"))
    n = 144 * tiles + 256 + 1
    assert page.meta["tiles"] == tiles
    assert page.layout.n_tokens == n == tiny_v2.visual_tokens(*size)
    assert page.model_inputs["pixel_values"].shape == (1, 3, 1024, 1024)
    local = page.model_inputs["pixel_values_local"]
    assert (local is None) if tiles == 0 else local.shape == (tiles, 3, 768, 768)
    assert page.layout.protected.tolist() == [False] * (n - 1) + [True]  # only the view separator
    assert page.layout.newline is None and page.layout.padding is None
    assert page.layout.token_boxes.shape == (n, 4) and page.layout.token_boxes.isnan().all()


def test_encode_gives_one_feature_per_placeholder_ending_with_the_separator(tiny_v2, noise_page):
    pages = [tiny_v2.prepare(noise_page(500, 400, 0)), tiny_v2.prepare(noise_page(1000, 500, 1))]
    features = tiny_v2.encode(pages)
    hidden = tiny_v2.model.config.text_config.hidden_size
    assert [f.shape for f in features] == [(p.layout.n_tokens, hidden) for p in pages]
    separator = tiny_v2.model.model.view_separator
    assert all(torch.equal(f[-1], separator) for f in features)
    assert tiny_v2.prompt_ids(7).count(tiny_v2.image_token_id) == 7
    assert tiny_v2.prompt_ids(0)[0] == tiny_v2.tokenizer.bos_token_id


def test_image_gray_is_the_global_view_as_the_encoder_sees_it(tiny_v2):
    page = tiny_v2.prepare(Image.new("RGB", (512, 1024), (0, 0, 0)))
    gray = page.image_gray
    assert gray.shape == (1024, 1024) and float(gray.min()) >= 0.0 and float(gray.max()) <= 1.0
    assert float(gray[:, 512 - 100 : 512 + 100].max()) < 1e-3  # the black page, centred
    assert float(gray[:, :200].min()) == pytest.approx(127 / 255, abs=0.01)  # the processor's grey padding


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory, tiny_v2):
    path = tmp_path_factory.mktemp("tiny-v2")
    tiny_v2.model.save_pretrained(path)
    tiny_v2.tokenizer.save_pretrained(path)
    return path


def test_a_saved_checkpoint_loads_exactly(tiny_v2, saved_checkpoint, noise_page):
    loaded = DeepseekOcr2Backend.from_pretrained(str(saved_checkpoint))
    reference, got = tiny_v2.model.state_dict(), loaded.model.state_dict()
    assert reference.keys() == got.keys()
    assert all(torch.equal(reference[k], got[k]) for k in reference)
    assert loaded.prompt_ids(3) == tiny_v2.prompt_ids(3)


def test_a_checkpoint_with_a_missing_weight_is_an_error_naming_it(saved_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    for item in saved_checkpoint.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    weights = load_file(broken / "model.safetensors")
    dropped = "lm_head.weight"  # the file uses the original key names; this one is the same in both
    del weights[dropped]
    weights["model.not_a_weight"] = torch.zeros(1)
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="does not match the model exactly") as err:
        DeepseekOcr2Backend.from_pretrained(str(broken))
    assert dropped in str(err.value) and "model.not_a_weight" in str(err.value)
