"""Decoding keeps DeepSeek-OCR's grounding tags (special tokens of its tokenizer) and drops only the tokens
that end or pad a row: the transformers engine's output step on ids a grounding page is made of."""

from __future__ import annotations

import pytest
import torch

from rtprune.deepseek.grounding import parse_grounding
from rtprune.engines.contract import EngineConfig
from rtprune.engines.decoding import decode_output, framing_ids
from rtprune.engines.hf.batch import PrunedPage
from rtprune.engines.hf.engine import Generation, OcrEngine
from rtprune.models.tiny_tokenizer import GROUNDING_TAGS

PAGE = "<|ref|>title<|/ref|><|det|>[[65, 50, 545, 78]]<|/det|>\n# Über den Fluss\n\n<|ref|>text<|/ref|><|det|>[[65, 90, 900, 300]]<|/det|>\nA paragraph."  # noqa: E501


@pytest.fixture(scope="module", params=["v1", "v2"])
def backend(request):
    return request.getfixturevalue(f"tiny_{request.param}")


def test_the_grounding_tags_are_special_tokens_of_the_tiny_tokenizer_as_of_deepseeks(backend):
    tok = backend.tokenizer
    ids = tok.encode(PAGE, add_special_tokens=False)
    tag_ids = {tok.convert_tokens_to_ids(t) for t in GROUNDING_TAGS}
    assert tag_ids <= set(tok.all_special_ids) and tag_ids <= set(ids)
    # what skip_special_tokens=True did before: the tags vanish, the layout with them
    assert "<|ref|>" not in tok.decode(ids, skip_special_tokens=True)


def _engine_text(backend, ids: list[int]) -> str:
    """The engine's own result step on a generation that produced `ids`."""
    engine = OcrEngine(EngineConfig(model=backend.model_id), backend=backend)
    page = PrunedPage(torch.zeros(1, 4), torch.tensor([0]), 1)
    gen = Generation([torch.tensor(ids)], ["eos"], [3], 0.0, 0.0)
    return engine.results([page], gen, 0.0, 0.0)[0].text


def test_the_engine_keeps_the_tags_and_drops_eos_and_padding(backend):
    tok = backend.tokenizer
    ids = tok.encode(PAGE, add_special_tokens=False)
    text = _engine_text(backend, [tok.bos_token_id, *ids, tok.eos_token_id, tok.pad_token_id])
    assert text == PAGE
    page = parse_grounding(text)
    assert page.format == "grounding" and [b.label for b in page.blocks] == ["title", "text"]
    assert page.blocks[0].boxes == ((65, 50, 545, 78),)


def test_framing_ids_are_eos_pad_and_bos(tiny_v1):
    tok = tiny_v1.tokenizer
    assert framing_ids(tok) == {tok.eos_token_id, tok.pad_token_id, tok.bos_token_id}
    image = tok.convert_tokens_to_ids("<image>")
    assert decode_output(tok, [image, tok.eos_token_id]) == "<image>"  # other specials stay visible
