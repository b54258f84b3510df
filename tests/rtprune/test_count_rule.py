"""The pixel count rule (PruneConfig.count_from_pixels): the kept count is known before the encoder runs."""

from __future__ import annotations

import dataclasses

import torch

from rtprune.api import PruneConfig, pixel_budget, prune
from rtprune.deepseek.v1_preprocess import mode_spec, token_layout


def _page(seed: int) -> tuple[torch.Tensor, object, torch.Tensor]:
    layout = token_layout(900, 1200, mode_spec("base"))
    gen = torch.Generator().manual_seed(seed)
    image = (torch.rand(1024, 1024, generator=gen) > 0.97).float()  # sparse ink
    return torch.randn(layout.n_tokens, 32, generator=gen), layout, image


def test_dynamic_count_ignores_the_features_under_the_pixel_rule():
    config = PruneConfig(retention=0.84, dynamic=True, count_from_pixels=True)
    tokens, layout, image = _page(0)
    # near-duplicate tokens: a high redundancy R, which the content rule would answer with fewer tokens
    redundant = tokens[:1].expand_as(tokens) + 0.01 * tokens
    kept = [
        prune(t, config, layout.protected, image=image, token_boxes=layout.token_boxes).kept_index.numel()
        for t in (tokens, redundant)
    ]
    n_prunable = int((~layout.protected).sum())
    planned = pixel_budget(config, n_prunable, image, layout.token_boxes)
    assert kept[0] == kept[1] == int(layout.protected.sum()) + planned
    content = dataclasses.replace(config, count_from_pixels=False)
    by_content = prune(redundant, content, layout.protected, image=image, token_boxes=layout.token_boxes)
    assert by_content.kept_index.numel() < kept[1]


def test_fixed_retention_budget_is_the_same_under_both_rules():
    tokens, layout, image = _page(1)
    for retention in (0.84, 0.6):
        results = [
            prune(
                tokens,
                PruneConfig(retention=retention, count_from_pixels=flag),
                layout.protected,
                image=image,
                token_boxes=layout.token_boxes,
            )
            for flag in (False, True)
        ]
        assert torch.equal(results[0].kept_index, results[1].kept_index)


def test_engine_keeps_the_newlines_of_pruned_rows_under_the_pixel_rule(tiny_v1, noise_page):
    """The content rule collapses a run of newlines left by pruned rows; the pixel rule keeps each one."""
    from rtprune.engines.contract import EngineConfig
    from rtprune.engines.hf.engine import OcrEngine

    engine = OcrEngine(EngineConfig(mode="gundam"), backend=tiny_v1)
    pages = engine.prepare([noise_page(1400, 500, 3)])  # landscape: whole padding rows in the global view
    feats, _ = engine.encode(pages)
    config = PruneConfig(method="padding", retention=0.6)
    layout = pages[0].layout
    by_content = engine.prune(pages, feats, config)[0][0]
    by_pixels = engine.prune(pages, feats, dataclasses.replace(config, count_from_pixels=True))[0][0]
    n_planned = int(layout.protected.sum()) + pixel_budget(config, int((~layout.protected).sum()))
    assert by_pixels.n_kept == n_planned
    assert by_content.n_kept < by_pixels.n_kept
    assert layout.newline[by_pixels.kept_index].sum() == layout.newline.sum()
