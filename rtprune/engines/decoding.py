"""Token ids -> page text, as both engines decode it: special tokens kept, except the ones that only end or
pad a sequence.

DeepSeek-OCR's grounding tags (`<|ref|>`, `<|/ref|>`, `<|det|>`, `<|/det|>`) are special tokens of its
tokenizer, so `skip_special_tokens=True` deletes them and leaves `label[[x0, ...]]` behind: the layout's
structure is lost. DeepSeek's own scripts decode with special tokens kept; so do we, and drop only the
end-of-sentence, padding and begin-of-sentence ids (what a finished or padded row holds besides text).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def framing_ids(tokenizer: Any) -> frozenset[int]:
    """The ids that frame a sequence rather than say anything: EOS, PAD, BOS (those the tokenizer has)."""
    ids = (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id)
    return frozenset(int(i) for i in ids if i is not None)


def decode_output(tokenizer: Any, ids: Iterable[int]) -> str:
    """Generated ids -> text with every special token but the framing ones (grounding tags kept)."""
    drop = framing_ids(tokenizer)
    kept = [int(i) for i in ids if int(i) not in drop]
    return tokenizer.decode(kept, skip_special_tokens=False)
