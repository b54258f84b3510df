"""Signs of a broken text layer read from the text alone: each character's class (a letter of which
script, a digit, punctuation, a symbol, a code point that maps to nothing) and word statistics over those
classes. Pure string functions, no PyMuPDF: the router's encoding features come from here."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

# Character classes, one ASCII letter each, so a page's text becomes a class string in one str.translate
# and every count after that is a C-level str.count.
SPACE, UNMAPPED, DIGIT, PUNCT, SYMBOL, MARK = " ", "u", "d", "p", "s", "m"
LATIN, GREEK, CYRILLIC, HEBREW, ARABIC, CJK, OTHER_LETTER = "L", "G", "C", "H", "A", "K", "O"
LETTERS = frozenset((LATIN, GREEK, CYRILLIC, HEBREW, ARABIC, CJK, OTHER_LETTER))
# Scripts that separate words with spaces: word length and one-letter words only mean something there.
SPACED_LETTERS = LETTERS - {CJK}

_SCRIPT_RANGES = (  # (first, last, class) for letters; a letter in none of them is OTHER_LETTER
    (0x0041, 0x024F, LATIN),
    (0x1E00, 0x1EFF, LATIN),
    (0x2C60, 0x2C7F, LATIN),
    (0xA720, 0xA7FF, LATIN),
    (0xFF21, 0xFF5A, LATIN),
    (0x0370, 0x03FF, GREEK),
    (0x1F00, 0x1FFF, GREEK),
    (0x0400, 0x052F, CYRILLIC),
    (0x2DE0, 0x2DFF, CYRILLIC),
    (0xA640, 0xA69F, CYRILLIC),
    (0x0590, 0x05FF, HEBREW),
    (0xFB1D, 0xFB4F, HEBREW),
    (0x0600, 0x06FF, ARABIC),
    (0x0750, 0x077F, ARABIC),
    (0x08A0, 0x08FF, ARABIC),
    (0xFB50, 0xFDFF, ARABIC),  # presentation forms: what shaped Arabic text extracts as
    (0xFE70, 0xFEFF, ARABIC),
    (0x1100, 0x11FF, CJK),
    (0x2E80, 0x2FFF, CJK),
    (0x3000, 0x9FFF, CJK),  # CJK symbols, kana, unified ideographs
    (0xAC00, 0xD7AF, CJK),
    (0xF900, 0xFAFF, CJK),
    (0xFF66, 0xFF9F, CJK),
)
_CID_CODE = re.compile(r"\(cid:\d+\)")  # how some extractors write an unmapped glyph into a text layer


def _letter_script(cp: int) -> str:
    for first, last, script in _SCRIPT_RANGES:
        if first <= cp <= last:
            return script
    return OTHER_LETTER


def _classify(cp: int) -> str:
    ch = chr(cp)
    if ch in "\t\n\r\x0b\x0c":
        return SPACE
    if cp == 0xFFFD:  # the replacement character: a glyph the font maps to no code point
        return UNMAPPED
    cat = unicodedata.category(ch)
    major = cat[0]
    if major == "L":  # modifier letters (the i of a superscript i) carry no script of their own
        return MARK if cat == "Lm" else _letter_script(cp)
    if cat in ("Cc", "Co", "Cn", "Cs"):  # controls, private use, unassigned, lone surrogates
        return UNMAPPED
    return {"Z": SPACE, "N": DIGIT if cat == "Nd" else SYMBOL, "P": PUNCT, "S": SYMBOL}.get(major, MARK)


@functools.cache
def _bmp_table() -> list[str]:
    """Class of every code point of the Basic Multilingual Plane, built once per process (about 60 ms)."""
    return [_classify(cp) for cp in range(0x10000)]


def _astral_class(ch: str) -> str:
    cp = ord(ch)
    if 0x20000 <= cp <= 0x3FFFF:
        return CJK
    return _classify(cp)


def char_classes(text: str) -> str:
    """One class letter per character of text (str.translate leaves characters past the table alone,
    so code points above U+FFFF are classed one by one; they are rare)."""
    classes = text.translate(_bmp_table())
    if classes.isascii():
        return classes
    return "".join(c if c.isascii() else _astral_class(c) for c in classes)


@dataclass(frozen=True)
class TextSigns:
    """Counts over a page's text. Words are runs between spaces that hold at least one letter."""

    chars: int  # characters that are not whitespace
    letters: int
    unmapped: int  # U+FFFD, controls, private use, unassigned, and every character of a "(cid:N)" code
    symbols: int  # math, currency, arrows, dingbats, and numbers that are not digits (superscripts)
    words: int
    single_letter_words: int  # one letter alone, in a script that puts spaces between words
    mixed_script_words: int  # letters of two alphabets in one word (Latin with Cyrillic...; CJK mixes freely)
    odd_words: int  # letters mixed with digits or symbols inside one word ("f0x", "qu|ck"; not CJK runs)
    spaced_words: int  # words in scripts that separate words with spaces
    spaced_word_letters: int  # their letters: spaced_word_letters / spaced_words is the mean word length


@functools.lru_cache(maxsize=8192)
def _word_kind(word: str) -> tuple[int, int, int, int, int, int]:
    """(is a word, mixes alphabets, odd, in a spaced script, its letters, a single letter) for one class
    word; cached, since pages repeat the same few dozen class words ("LLLL", "LLLLLp"...)."""
    scripts = LETTERS.intersection(word)
    if not scripts:
        return 0, 0, 0, 0, 0, 0
    mixed = len(scripts - {CJK}) > 1
    if CJK in scripts:  # CJK runs hold whole phrases, digits and all ("2024年"): not odd
        return 1, mixed, 0, 0, 0, 0
    odd = DIGIT in word or SYMBOL in word
    letters = sum(word.count(s) for s in scripts)
    return 1, mixed, odd, 1, letters, letters == 1 and len(word.strip(PUNCT)) == 1


def _word_counts(classes: str) -> tuple[int, ...]:
    """(words, single-letter words, mixed-script words, odd words, spaced words, their letters)."""
    totals = [0, 0, 0, 0, 0, 0]
    for word, n in Counter(classes.split()).items():
        is_word, mixed, odd, spaced, letters, single = _word_kind(word)
        if is_word:
            totals[0] += n
            totals[1] += n * single
            totals[2] += n * mixed
            totals[3] += n * odd
            totals[4] += n * spaced
            totals[5] += n * letters
    return tuple(totals)


def text_signs(text: str) -> TextSigns:
    """Class counts and word statistics of text (a page's text layer)."""
    classes = char_classes(text)
    cid_chars = sum(len(m) for m in _CID_CODE.findall(text)) if "(cid:" in text else 0
    chars = len(classes) - classes.count(SPACE)
    letters = sum(classes.count(s) for s in LETTERS)
    words, single, mixed, odd, spaced, spaced_letters = _word_counts(classes)
    return TextSigns(
        chars=chars,
        letters=letters,
        unmapped=min(chars, classes.count(UNMAPPED) + cid_chars),
        symbols=classes.count(SYMBOL),
        words=words,
        single_letter_words=single,
        mixed_script_words=mixed,
        odd_words=odd,
        spaced_words=spaced,
        spaced_word_letters=spaced_letters,
    )
