"""The engine on tiny random DeepSeek-OCR v1 and v2 (CPU): pruning bookkeeping, exactness, batching, usage."""

from __future__ import annotations

import pytest
import torch

from rtprune.api import PruneConfig
from rtprune.engines.contract import EngineConfig
from rtprune.engines.hf.engine import OcrEngine

SIZES = [(500, 400), (1000, 500)]  # v2: 257 and 545 visual tokens; v1 gundam: 273 and 483 (crops)
MAX_NEW = 12


def engine_for(backend, **overrides) -> OcrEngine:
    fields = {"model": backend.model_id, "max_new_tokens": MAX_NEW} | overrides
    return OcrEngine(EngineConfig(**fields), backend=backend)


@pytest.fixture(scope="module", params=["v1", "v2"])
def backend(request):
    return request.getfixturevalue(f"tiny_{request.param}")


@pytest.fixture(scope="module")
def encoded(backend, noise_page):
    """Pages encoded once; every test prunes and generates from the same features."""
    engine = engine_for(backend)
    pages = engine.prepare([noise_page(w, h, seed) for seed, (w, h) in enumerate(SIZES)])
    features, _ = engine.encode(pages)
    return pages, features


def run(engine: OcrEngine, pages, features) -> list[list[int]]:
    pruned, _ = engine.prune(pages, features)
    return [row.tolist() for row in engine.generate(pruned).output_ids]


def unpruned_reference(backend, page) -> list[int]:
    """The model's own path: pixels in, N placeholders, get_image_features inside forward."""
    from transformers import GenerationConfig

    ids = torch.tensor([backend.prompt_ids(page.layout.n_tokens)])
    tok = backend.tokenizer
    config = GenerationConfig(
        do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    with torch.inference_mode():
        out = backend.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            **backend.collate([page]),
            generation_config=config,
        )
    return out[0, ids.shape[1] :].tolist()


@pytest.fixture(scope="module")
def reference(backend, encoded) -> list[list[int]]:
    return [unpruned_reference(backend, page) for page in encoded[0]]


@pytest.mark.parametrize("position_mode", ["compact", "original"])
@pytest.mark.parametrize("prune", [PruneConfig(method="none"), PruneConfig(retention=1.0)])
def test_keep_all_reproduces_the_unpruned_model(backend, encoded, reference, position_mode, prune):
    pages, features = encoded
    assert run(engine_for(backend, prune=prune, position_mode=position_mode), pages, features) == reference


def test_pruning_changes_the_output_so_the_exactness_tests_can_fail(backend, encoded):
    pages, features = encoded
    keep_all = run(engine_for(backend, prune=PruneConfig(method="none")), pages, features)
    pruned = run(engine_for(backend, prune=PruneConfig(retention=0.6)), pages, features)
    assert keep_all != pruned
    assert keep_all[0] != keep_all[1]  # the pages are told apart


def pre_collapse_kept(pages, features, config: PruneConfig) -> list[torch.Tensor]:
    from rtprune.api import prune_batch

    results = prune_batch(features, config, protected=[p.layout.protected for p in pages])
    return [r.kept_index for r in results]


@pytest.mark.parametrize("retention", [0.6, 0.1])
def test_kept_counts_match_the_budget_and_protected_tokens_survive(backend, encoded, retention):
    pages, features = encoded
    # norm-only: the kept features must then be the encoder's own rows (the OT merge would move them)
    config = PruneConfig(method="norm", retention=retention)
    pruned, _ = engine_for(backend, prune=config).prune(pages, features)
    for page, feats, kept, before in zip(
        pages, features, pruned, pre_collapse_kept(pages, features, config), strict=True
    ):
        layout = page.layout
        newline = (
            layout.newline if layout.newline is not None else torch.zeros(layout.n_tokens, dtype=torch.bool)
        )
        n_protected = int(layout.protected.sum())
        collapsed = int((newline[before][1:] & newline[before][:-1]).sum())
        assert kept.n_visual == layout.n_tokens
        assert kept.n_kept == round(retention * (layout.n_tokens - n_protected)) + n_protected - collapsed
        assert torch.all(kept.kept_index[1:] > kept.kept_index[:-1])
        assert torch.equal(kept.features, feats[kept.kept_index])
        separators = (layout.protected & ~newline).nonzero().squeeze(1)
        assert set(separators.tolist()) <= set(kept.kept_index.tolist())
        kept_nl = newline[kept.kept_index]
        assert not (kept_nl[1:] & kept_nl[:-1]).any()  # one newline per run of fully pruned rows
        row_of = newline.long().cumsum(0) - newline.long()  # row r ends with the r-th newline
        rows_with_content = set(row_of[kept.kept_index[~kept_nl]].tolist())
        newline_rows = set(row_of[kept.kept_index[kept_nl]].tolist())
        assert rows_with_content & set(range(int(newline.sum()))) <= newline_rows
    if retention == 0.1 and backend.model_id == "tiny-random-v1":
        assert collapsed > 0  # the low retention really empties rows, so the collapse was exercised


@pytest.mark.parametrize("position_mode", ["compact", "original"])
def test_a_batch_generates_what_each_page_generates_alone(backend, encoded, position_mode):
    pages, features = encoded
    engine = engine_for(backend, prune=PruneConfig(retention=0.6), position_mode=position_mode)
    together = run(engine, pages, features)
    alone = [run(engine, [page], [feats])[0] for page, feats in zip(pages, features, strict=True)]
    assert together == alone


def test_original_positions_keep_the_gaps_of_pruned_tokens(backend, encoded):
    pages, features = encoded
    engine = engine_for(backend, prune=PruneConfig(retention=0.6), position_mode="original")
    pruned, _ = engine.prune(pages[:1], features[:1])
    batch = engine.build_prompts(pruned)
    n_text = len(backend.prompt_ids(0))
    positions = batch.position_ids[0]
    assert positions.numel() == pruned[0].n_kept + n_text
    assert int(positions[-1]) == pruned[0].n_visual + n_text - 1  # text after the image keeps its place
    image_pos = positions[batch.input_ids[0] == backend.image_token_id]
    assert torch.equal(image_pos - 1, pruned[0].kept_index)  # BOS sits at 0, the image starts at 1
    compact = engine_for(backend, prune=PruneConfig(retention=0.6)).build_prompts(pruned)
    assert torch.equal(compact.position_ids[0], torch.arange(positions.numel()))


def test_usage_is_consistent_and_batch_seconds_are_shared_exactly(backend, noise_page):
    engine = engine_for(backend, prune=PruneConfig(retention=0.84), max_new_tokens=4)
    results, seconds = engine.ocr_timed([noise_page(w, h, 10 + i) for i, (w, h) in enumerate(SIZES)])
    n_text = len(backend.prompt_ids(0))
    for result, (w, h) in zip(results, SIZES, strict=True):
        usage = result.usage
        assert usage.visual_tokens == engine.visual_tokens(w, h)
        assert usage.visual_tokens_kept <= usage.visual_tokens
        assert usage.prompt_tokens == usage.visual_tokens_kept + n_text
        assert 1 <= usage.output_tokens <= 4
        assert usage.finish_reason == "length" or usage.output_tokens < 4
        assert min(usage.encode_s, usage.prune_s, usage.prefill_s, usage.decode_s) > 0
    for phase in ("encode_s", "prune_s", "prefill_s", "decode_s"):
        total = sum(getattr(r.usage, phase) for r in results)
        assert total == pytest.approx(getattr(seconds, phase), rel=1e-9)
    # Shares follow the work: the page with more prompt tokens carries more of the prefill.
    assert results[1].usage.prefill_s > results[0].usage.prefill_s


def test_max_new_tokens_caps_a_page_with_finish_reason_length(backend, encoded):
    pages, features = encoded
    engine = engine_for(backend, max_new_tokens=3, repetition_ngram=30, repetition_window=90)
    pruned, _ = engine.prune(pages, features)
    gen = engine.generate(pruned)
    for row, reason in zip(gen.output_ids, gen.finish_reasons, strict=True):
        assert row.numel() <= 3
        assert reason == ("length" if 1 not in row.tolist() else "eos")
    assert "length" in gen.finish_reasons


def test_repetition_guard_ends_a_page_that_loops(noise_page):
    from rtprune.models.deepseek_v2 import DeepseekOcr2Backend

    backend = DeepseekOcr2Backend.tiny_random(seed=1)
    loop_token = backend.tokenizer.convert_tokens_to_ids("a")
    with torch.no_grad():  # an lm_head that always prefers one token: the model repeats it forever
        head = backend.model.lm_head
        head.weight.mul_(1e-3)
        head.weight[loop_token] = 0.0
        biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[loop_token] = 10.0
        backend.model.lm_head = biased
    engine = engine_for(backend, max_new_tokens=60, repetition_ngram=5, repetition_window=20)
    result = engine.ocr([noise_page(400, 300, 3)])[0]
    assert result.usage.finish_reason == "repetition"
    assert result.usage.output_tokens == 5 + 1 + 1  # n-gram, its recurrence, then the forced EOS
    assert result.text == "a" * 6
    capped = engine_for(backend, max_new_tokens=60, repetition_ngram=30, repetition_window=90)
    assert capped.ocr([noise_page(400, 300, 3)])[0].usage.output_tokens == 32


def test_engine_reports_what_the_pipeline_records(tiny_v1, tiny_v2):
    engine = engine_for(tiny_v2, prune=PruneConfig(method="rtprune", retention=0.7))
    assert engine.identity.model_id == "tiny-random-v2"
    assert engine.identity.model_mode == "dynamic"
    assert engine.identity.prune_method == "rtprune"
    assert engine.identity.prune_config_hash == PruneConfig(method="rtprune", retention=0.7).config_hash()
    assert engine.visual_tokens(1654, 2339) == 6 * 144 + 256 + 1
    v1 = engine_for(tiny_v1)
    assert (v1.identity.model_id, v1.identity.model_mode) == ("tiny-random-v1", "gundam")
    assert v1.visual_tokens(1654, 2339) == tiny_v1.visual_tokens(1654, 2339)


def test_the_dynamic_ratio_gets_what_it_needs_from_the_layout(backend, noise_page):
    """The page image and token boxes reach the library in a form it uses: a noisy page reads as dense text
    and keeps more of its tokens than a blank page of the same size."""
    from PIL import Image

    engine = engine_for(backend, prune=PruneConfig(dynamic=True))
    pages = engine.prepare([noise_page(500, 400, 0), Image.new("RGB", (500, 400), "white")])
    pruned, _ = engine.prune(pages, engine.encode(pages)[0])
    assert pruned[0].n_visual == pruned[1].n_visual
    assert pruned[0].n_kept > pruned[1].n_kept


def test_an_empty_batch_gives_no_results(tiny_v2):
    assert engine_for(tiny_v2).ocr([]) == []


def test_a_backend_built_for_another_prompt_is_refused(tiny_v2):
    with pytest.raises(ValueError, match="prompt"):
        engine_for(tiny_v2, prompt="<image>\nFree OCR.")


def test_collapse_keeps_one_newline_per_run_of_fully_pruned_rows():
    from rtprune.engines.hf.batch import collapse_newlines

    # 3 rows of 2 tokens + newline: [a b \n][c d \n][e f \n]; row 2 fully pruned, row 3 keeps only f.
    newline = torch.tensor([0, 0, 1, 0, 0, 1, 0, 0, 1], dtype=torch.bool)
    kept = torch.tensor([0, 2, 5, 7, 8])
    assert collapse_newlines(kept, newline).tolist() == [True, True, False, True, True]
    all_pruned = torch.tensor([2, 5, 8])
    assert collapse_newlines(all_pruned, newline).tolist() == [True, False, False]
    assert collapse_newlines(kept, None).all()


def test_prompt_positions_and_left_padding():
    from rtprune.engines.hf.batch import left_pad, prompt_with_positions, split_shares

    full = [0, 9, 9, 9, 9, 5, 6]  # BOS, 4 image placeholders (id 9), 2 text tokens
    ids, original = prompt_with_positions(full, 9, torch.tensor([1, 3]), "original")
    assert ids.tolist() == [0, 9, 9, 5, 6] and original.tolist() == [0, 2, 4, 5, 6]
    _, compact = prompt_with_positions(full, 9, torch.tensor([1, 3]), "compact")
    assert compact.tolist() == [0, 1, 2, 3, 4]
    batch = left_pad([ids, torch.tensor([0, 5])], [original, torch.tensor([0, 1])], pad_id=2)
    assert batch.input_ids.tolist() == [[0, 9, 9, 5, 6], [2, 2, 2, 0, 5]]
    assert batch.attention_mask.tolist() == [[1] * 5, [0, 0, 0, 1, 1]]
    assert batch.position_ids.tolist() == [[0, 2, 4, 5, 6], [0, 0, 0, 0, 1]] and batch.lengths == [5, 2]
    assert split_shares(3.0, [1, 2]) == [1.0, 2.0] and split_shares(1.0, [0, 0]) == [0.5, 0.5]
