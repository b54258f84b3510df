"""A byte-level tokenizer built in code, for tiny-random models (no tokenizer files can be downloaded).

Ids 0..255 of the byte alphabet are shifted past the special tokens; everything a real DeepSeek-OCR
prompt needs (BOS, EOS, PAD, <image>, <|grounding|>) is a special token, and so are the grounding tags the
model answers with (<|ref|>, <|/ref|>, <|det|>, <|/det|>), as in DeepSeek-OCR's own tokenizer. Text decoded from random weights
is meaningless, but it round-trips: decode(encode(s)) == s for any UTF-8 string.
"""

from __future__ import annotations

from functools import lru_cache

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
IMAGE, GROUNDING = "<image>", "<|grounding|>"
GROUNDING_TAGS = ("<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>")


@lru_cache(maxsize=8)
def build_tiny_tokenizer(vocab_size: int, image_token_id: int):
    """A PreTrainedTokenizerFast with bos=0, eos=1, pad=2, bytes at 3..258, <image>=image_token_id,
    <|grounding|> right after it, then the four grounding tags."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    extra = (GROUNDING, *GROUNDING_TAGS)
    if vocab_size < 300 or not 259 < image_token_id < vocab_size - len(extra):
        raise ValueError(f"need vocab_size >= 300 and 259 < image_token_id < {vocab_size - len(extra)}")
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for bytes
    vocab = {BOS: 0, EOS: 1, PAD: 2} | {ch: 3 + i for i, ch in enumerate(sorted(alphabet))}
    specials = {IMAGE: image_token_id} | {token: image_token_id + 1 + k for k, token in enumerate(extra)}
    filler = {f"<tiny_{i}>": i for i in range(len(vocab), vocab_size) if i not in specials.values()}
    vocab |= specials | filler
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.add_special_tokens({"additional_special_tokens": [IMAGE, *extra]})
    return fast
