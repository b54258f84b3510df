"""Character classes and word signs of a broken text layer, on strings."""

from __future__ import annotations

from pipeline.stages.text_signs import char_classes, text_signs


def test_char_classes_and_signs():
    assert char_classes("Ab1 ,+\ufffd\ue000中ж") == "LLd ps" + "uuKC"
    clean = text_signs("The quick brown fox jumps over a lazy dog.")
    assert (clean.words, clean.single_letter_words, clean.odd_words, clean.mixed_script_words) == (9, 1, 0, 0)
    garbled = text_signs("Tbe qu|ck br0wn f o x")
    assert garbled.odd_words == 2 and garbled.single_letter_words == 3
    assert text_signs("Hеllo wоrld").mixed_script_words == 2  # Cyrillic е and о inside Latin words
    assert text_signs("2024年的数据 GPU加速").odd_words == 0  # CJK runs mix digits and Latin freely
    assert text_signs("(cid:12)(cid:7) ok").unmapped == len("(cid:12)(cid:7)")
    assert text_signs("xⁱ").mixed_script_words == 0  # a modifier letter is not a second alphabet
