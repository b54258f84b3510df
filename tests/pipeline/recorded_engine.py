"""A test double at the engine boundary: an engine that answers each page with a recorded DeepSeek-OCR
grounding output (chosen by the page image's size), and the real OCR stage built on it.

`RecordedOcrStage` is the real OcrStage whose actor gets this engine from `create_engine`: pages, render,
OCR stage, page policy, layout, figures, commit and index all run for real. The driver's build_dataset
takes it in place of OcrStage (monkeypatched in the driver), and Ray ships this module by value to the
actors (ray.cloudpickle.register_pickle_by_value), since the workers cannot import the tests' folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

GROUNDING = Path(__file__).resolve().parents[1] / "data" / "grounding"


def recordings(synthetic: str) -> dict[tuple[int, int], str]:
    """Page image size (px, at 144 dpi) -> the output the engine gives it."""
    return {
        (1190, 1684): synthetic,  # the page with the red square (A4), located as the model would
        (1170, 1654): (GROUNDING / "v1_gundam_manual.txt").read_text(encoding="utf-8"),  # its original size
        (1200, 1600): (GROUNDING / "v1_truth_tables.txt").read_text(encoding="utf-8"),
    }


class RecordedEngine:
    """Engine protocol (rtprune.engines.contract.Engine) over recorded outputs; a page of another size is
    answered with plain text (no layout)."""

    def __init__(self, outputs: dict[tuple[int, int], str]) -> None:
        self._outputs = outputs

    @property
    def identity(self) -> Any:
        from rtprune.engines.contract import EngineIdentity

        return EngineIdentity("recorded-grounding", "gundam", "none", "")

    def visual_tokens(self, width_px: int, height_px: int) -> int:
        return 256

    def ocr(self, images: Sequence[Any], *, prune: Any = None, temperature: float = 0.0) -> list[Any]:
        from rtprune.engines.contract import PageResult, PageUsage

        results = []
        for image in images:
            text = self._outputs.get(image.size, "no recording for this page")
            usage = PageUsage(256, 256, 270, max(1, len(text) // 4), 0.01, 0.0, 0.02, 0.05, "eos")
            results.append(PageResult(text, usage))
        return results


def recorded_stage(outputs: dict[tuple[int, int], str]) -> type:
    """OcrStage whose engine is a RecordedEngine over `outputs` (create_engine patched in the actor)."""
    from pipeline.stages.ocr import OcrStage

    class RecordedOcrStage(OcrStage):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            import rtprune.engines

            rtprune.engines.create_engine = lambda config: RecordedEngine(outputs)  # type: ignore[assignment]
            super().__init__(*args, **kwargs)

    return RecordedOcrStage
