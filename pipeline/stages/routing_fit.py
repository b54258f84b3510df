"""Fitting the router's thresholds on the labelled set (pipeline/routing_set), and the confusion table that
judges them. The search is coordinate descent over one threshold at a time: its candidates are the
midpoints between the values the set's pages take, plus "off"; every threshold starts at its widest
margin (halfway between the last page with a good layer and the next page that needs OCR, on its own
feature), then moves only where that scores better: first fewer pages whose layer is wrong let into the
text layer (at most max_false_text_share of them are allowed), then fewer mistakes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pipeline.routing_set import LabelledPage, expected_route, labelled_pages
from pipeline.stages.page_features import PageFeatures, page_features
from pipeline.stages.routing import RoutingConfig, RoutingThresholds, route_page

TRUST_SETTINGS = (True, False)


@dataclass(frozen=True)
class Sample:
    kind: str
    label: str  # the generator's label: is the page's layer exact
    features: PageFeatures

    def expected(self, trust_invisible_text: bool) -> str:
        return expected_route(self.kind, self.label, trust_invisible_text)


def labelled_samples(seed: int = 0, pages: Iterable[LabelledPage] | None = None) -> list[Sample]:
    """The labelled set (`pages`, or the set drawn from `seed`) with each page's features; each PDF is
    opened once."""
    import pymupdf

    samples, docs = [], {}
    for page in labelled_pages(seed) if pages is None else pages:
        key = id(page.pdf_bytes)
        if key not in docs:
            docs[key] = pymupdf.open(stream=page.pdf_bytes, filetype="pdf")
        samples.append(Sample(page.kind, page.label, page_features(docs[key][page.page_index])))
    for doc in docs.values():
        doc.close()
    return samples


@dataclass(frozen=True)
class _Rule:
    """How one threshold reads the features: the value it compares, whether it fires above the threshold
    (else below), the pages it can decide given the thresholds fitted before it, and which trust setting's
    expected routes judge it."""

    read: Callable[[PageFeatures], float]
    fires_above: bool = True
    scope: Callable[[PageFeatures, dict], bool] = lambda f, t: f.chars > 0
    trust: bool = True


# The image rule needs both its thresholds; its density threshold starts on pages at least this covered.
START_IMAGE_COVER = 0.5


def _has_words(f: PageFeatures, t: dict) -> bool:
    return f.chars > 0 and f.words >= RoutingConfig().min_words_for_signs


def _many_glyphs(f: PageFeatures, t: dict) -> bool:
    return t["min_glyph_paths"] is not None and f.glyph_paths >= t["min_glyph_paths"]


# Fitted in this order: the most specific signs first (a mixed-script word is rarely innocent, a symbol
# often is: math), and the image rule's density threshold before its cover threshold.
RULES: dict[str, _Rule] = {
    "min_glyph_paths": _Rule(lambda f: f.glyph_paths, scope=lambda f, t: True),
    "max_blank_image_cover": _Rule(
        lambda f: f.image_cover, scope=lambda f, t: f.chars == 0 and not _many_glyphs(f, t)
    ),
    "max_invisible_share": _Rule(lambda f: f.invisible_share, trust=False),
    "max_unmapped_share": _Rule(lambda f: f.unmapped_share),
    "max_mixed_script_word_share": _Rule(lambda f: f.mixed_script_word_share, scope=_has_words),
    "max_odd_word_share": _Rule(lambda f: f.odd_word_share, scope=_has_words),
    "max_single_letter_word_share": _Rule(lambda f: f.single_letter_word_share, scope=_has_words),
    "max_symbol_share": _Rule(lambda f: f.symbol_share),
    "max_mean_word_letters": _Rule(lambda f: f.mean_word_letters, scope=_has_words),
    "max_glyph_paths_per_char": _Rule(lambda f: f.glyph_paths / f.chars if f.chars else 0.0),
    "min_chars_per_kpt2_on_images": _Rule(
        lambda f: f.chars_per_kpt2,
        fires_above=False,
        scope=lambda f, t: f.chars > 0 and f.image_cover > START_IMAGE_COVER,
    ),
    "max_image_cover": _Rule(
        lambda f: f.image_cover,
        scope=lambda f, t: (
            t["min_chars_per_kpt2_on_images"] is not None
            and f.chars > 0
            and f.chars_per_kpt2 < t["min_chars_per_kpt2_on_images"]
        ),
    ),
}


def candidates(name: str, samples: list[Sample]) -> list[float]:
    """Midpoints between consecutive distinct values of the threshold's feature, ascending."""
    values = sorted({round(RULES[name].read(s.features), 9) for s in samples})
    return [round((a + b) / 2, 6) for a, b in zip(values, values[1:], strict=False)]


@dataclass(frozen=True)
class Confusion:
    """Counts of (expected route, given route) over the set, under both trust settings."""

    counts: Counter  # (trust_invisible_text, expected, routed) -> pages
    mistakes: Counter  # (trust_invisible_text, kind, expected, routed) -> pages routed wrongly

    def _sum(self, trust: bool | None, keep: Callable[[str, str], bool]) -> int:
        return sum(n for (t, e, r), n in self.counts.items() if keep(e, r) and (trust is None or t == trust))

    def total(self, trust: bool | None = None) -> int:
        return self._sum(trust, lambda e, r: True)

    def right(self, trust: bool | None = None) -> int:
        return self._sum(trust, lambda e, r: e == r)

    def wrong_layer(self, trust: bool | None = None) -> int:
        """Pages whose layer is wrong (expected OCR)."""
        return self._sum(trust, lambda e, r: e == "ocr")

    def false_text_layer(self, trust: bool | None = None) -> int:
        """Pages whose layer is wrong that were routed to the text layer anyway: the costly mistake."""
        return self._sum(trust, lambda e, r: e == "ocr" and r == "text_layer")


def confusion(samples: list[Sample], thresholds: RoutingThresholds, **config) -> Confusion:
    """Route every sample under both trust settings (config: other RoutingConfig fields)."""
    counts: Counter = Counter()
    mistakes: Counter = Counter()
    for trust in TRUST_SETTINGS:
        cfg = RoutingConfig(mode="text_layer", trust_invisible_text=trust, thresholds=thresholds, **config)
        for s in samples:
            expected, routed = s.expected(trust), route_page(s.features, cfg).route
            counts[(trust, expected, routed)] += 1
            if expected != routed:
                mistakes[(trust, s.kind, expected, routed)] += 1
    return Confusion(counts, mistakes)


def _widest_margin(name: str, samples: list[Sample], fitted: dict) -> float | None:
    """The threshold that fires on as many pages needing OCR as it can without firing on any page whose
    layer is good: halfway between the last good page's value and the next bad page's, counting only bad
    pages the rules fitted before it still let through; None when no such page lies beyond every good one."""
    rule = RULES[name]
    sign = 1.0 if rule.fires_above else -1.0
    so_far = RoutingConfig(
        mode="text_layer", trust_invisible_text=rule.trust, thresholds=RoutingThresholds(**fitted)
    )
    scoped = [s for s in samples if rule.scope(s.features, fitted)]
    good = [sign * rule.read(s.features) for s in scoped if s.expected(rule.trust) == "text_layer"]
    edge = max(good, default=min((sign * rule.read(s.features) for s in scoped), default=0.0) - 1.0)
    missed = [
        s for s in scoped if s.expected(rule.trust) == "ocr" and route_page(s.features, so_far).route != "ocr"
    ]
    beyond = [v for v in (sign * rule.read(s.features) for s in missed) if v > edge]
    return round(sign * (edge + min(beyond)) / 2, 6) if beyond else None


def _score(samples: list[Sample], values: dict[str, float | None], max_false_share: float) -> tuple[int, int]:
    table = confusion(samples, RoutingThresholds(**values))
    allowed = int(max_false_share * table.wrong_layer())
    return max(0, table.false_text_layer() - allowed), table.total() - table.right()


def _runs(scores: list[tuple[int, int]], best: tuple[int, int]) -> list[tuple[int, int]]:
    """(first, last) index of each stretch of consecutive candidates scoring `best`."""
    runs, start = [], None
    for i, score in enumerate([*scores, None]):
        if score == best and start is None:
            start = i
        elif score != best and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def _refit(name: str, samples: list[Sample], values: dict, max_false_share: float) -> float | None:
    """One coordinate step: the best value for one threshold, the others fixed. A value already among the
    best stays (its margin was set from its own feature, before other rules made it redundant), off
    stays off on a tie, and a new value takes the middle of the longest stretch of best candidates."""
    current = values[name]
    now = _score(samples, values, max_false_share)
    cands = candidates(name, samples)
    scores = [_score(samples, {**values, name: c}, max_false_share) for c in cands]
    off = _score(samples, {**values, name: None}, max_false_share)
    best = min([*scores, off, now])
    if now == best:
        return current
    if off == best:
        return None
    first, last = max(_runs(scores, best), key=lambda run: run[1] - run[0])
    return round((cands[first] + cands[last]) / 2, 6)


def fit_thresholds(samples: list[Sample], max_false_text_share: float = 0.01, rounds: int = 6) -> dict:
    """Each threshold at its widest margin (no good page sent to OCR), in RULES order; then coordinate
    steps until nothing changes, trading good pages for bad ones where that lowers the score."""
    values: dict[str, float | None] = dict.fromkeys(RULES)
    for name in RULES:
        values[name] = _widest_margin(name, samples, values)
    for _ in range(rounds):
        changed = False
        for name in RULES:
            pick = _refit(name, samples, values, max_false_text_share)
            changed |= pick != values[name]
            values[name] = pick
        if not changed:
            break
    return {name: values[name] for name in RoutingThresholds.model_fields}


def confusion_table(table: Confusion) -> str:
    """The confusion table as text: rows expected, columns routed, one block per trust setting."""
    lines = []
    for trust in TRUST_SETTINGS:
        lines.append(f"trust_invisible_text={trust}: {table.right(trust)}/{table.total(trust)} right")
        lines.append(f"  {'expected / routed':20s}{'ocr':>8s}{'text_layer':>12s}")
        for expected in ("ocr", "text_layer"):
            ocr, text = (table.counts.get((trust, expected, r), 0) for r in ("ocr", "text_layer"))
            lines.append(f"  {expected:20s}{ocr:8d}{text:12d}")
    for (trust, kind, expected, routed), n in sorted(table.mistakes.items()):
        lines.append(f"  mistake (trust={trust}): {n} x {kind}: expected {expected}, routed {routed}")
    return "\n".join(lines)
