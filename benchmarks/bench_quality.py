"""What the page-quality signals add on CPU after OCR, and the stream loop guard beside the per-token check:

    PYTHONPATH=. python benchmarks/bench_quality.py --repeats 20

Part 1: text_signals per page on page-sized OCR-like texts (benchmarks/multilingual_text.py) in five
scripts and four sizes: a paragraph, a page, a dense page, and a page that looped to the token cap (8192
tokens, about 30,000 characters). Each line gives the best-of-N milliseconds of the whole call and of its
parts (markup and character counts, the repetition count, language identification), so the share of each
shows side by side. The identifier's one-time load per process is printed first.

Part 2: the repetition guard fed a stream one token at a time, StreamLoopGuard against asking
repeats_in_window on the last `window` ids at every token (what the logits processors do), on the same
streams: one that never loops and one that loops at its end.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from benchmarks.multilingual_text import SENTENCES, page_text
from pipeline.config import QualityConfig
from pipeline.stages import quality
from rtprune.deepseek.repetition import repeats_in_window
from rtprune.deepseek.stream_guard import StreamLoopGuard

LANGUAGES = ("en", "ru", "ar", "hi", "zh")


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Milliseconds of the fastest of `repeats` calls: the call's own cost, least disturbed by other
    processes on a shared machine (a median there measures the neighbours)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def texts(language: str) -> dict[str, str]:
    """The four sizes of page in one language."""
    looped = (" ".join(SENTENCES[language]) + "\n") * 200
    return {
        "paragraph": " ".join(SENTENCES[language]),
        "page": page_text(language, seed=0),
        "dense page": page_text(language, seed=0, paragraphs=24),
        "looped to cap": looped[:30_000],
    }


def parts_ms(text: str, config: quality.QualityConfig, repeats: int) -> dict[str, float]:
    readable = quality.readable_text(text)
    _, token_view, letters_view = quality._views(readable, config.language_sample_characters)
    tokens = token_view.split()
    return {
        "total": best_ms(lambda: quality.text_signals(text, config), repeats),
        "counts": best_ms(
            lambda: quality._views(quality.readable_text(text), config.language_sample_characters), repeats
        ),
        "repeats": best_ms(lambda: quality.repeated_share(tokens, config.repeat_ngram_words), repeats),
        "language": best_ms(lambda: quality.identify_language(letters_view, config), repeats),
    }


def bench_signals(repeats: int) -> None:
    config = QualityConfig()
    start = time.perf_counter()
    quality.text_signals(" ".join(SENTENCES["en"]), config)
    print(f"language identifier load (once per process): {time.perf_counter() - start:.2f} s\n")
    print(
        f"{'language':8} {'text':14} {'chars':>6} {'total ms':>9} {'counts':>7} {'repeats':>8} {'language':>9}"
    )
    for language in LANGUAGES:
        for name, text in texts(language).items():
            ms = parts_ms(text, config, repeats)
            print(
                f"{language:8} {name:14} {len(text):6d} {ms['total']:9.2f} {ms['counts']:7.2f} "
                f"{ms['repeats']:8.2f} {ms['language']:9.2f}"
            )


def per_token_check(ids: list[int], ngram: int, window: int) -> int | None:
    """What the logits processors do: repeats_in_window on the last `window` ids after every token."""
    for length in range(1, len(ids) + 1):
        recent = torch.tensor(ids[max(0, length - window) : length], dtype=torch.long)
        if repeats_in_window(recent, ngram, window, frozenset()):
            return length
    return None


def bench_guard(tokens: int, repeats: int) -> None:
    ngram, window = 30, 90  # the engines' defaults
    streams = {
        "no loop": list(range(tokens)),
        "loops at end": list(range(tokens - 120)) + list(range(5, 65)) * 2,
    }
    print(f"\nstream guard, ngram {ngram}, window {window}: microseconds per token")
    print(f"{'stream':14} {'tokens':>7} {'StreamLoopGuard':>16} {'per-token check':>16} {'ratio':>7}")
    for name, ids in streams.items():
        guard = StreamLoopGuard(ngram, window)
        guard.extend(ids)
        assert guard.stop_at == per_token_check(ids, ngram, window)
        fast = best_ms(lambda ids=ids: StreamLoopGuard(ngram, window).extend(ids), repeats) * 1e3 / len(ids)
        slow = (
            best_ms(lambda ids=ids: per_token_check(ids, ngram, window), max(1, repeats // 5))
            * 1e3
            / len(ids)
        )
        print(f"{name:14} {len(ids):7d} {fast:16.2f} {slow:16.2f} {slow / fast:6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=20, help="timed calls per measurement (the fastest counts)"
    )
    parser.add_argument("--tokens", type=int, default=4000, help="length of the guard's streams")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench_signals(args.repeats)
    bench_guard(args.tokens, args.repeats)


if __name__ == "__main__":
    main()
