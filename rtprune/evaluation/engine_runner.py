"""Run pruning settings with the real engine, loading the model once for the whole sweep.

Encoding does not depend on the pruning config, so each batch is prepared and encoded once and every
setting prunes and generates from the same visual features; the measured encode seconds are charged to
every setting's pages, as each setting would pay them in production. Keeping every token must then give
the unpruned text exactly, which the sweep's agreement column shows for any retention-1.0 setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rtprune.api import PruneConfig
from rtprune.engines.contract import EngineConfig, PageResult
from rtprune.evaluation.sweep import UNPRUNED, SettingsRunner


class EngineSettingsRunner:
    """A SettingsRunner over one loaded OcrEngine."""

    def __init__(self, engine_config: EngineConfig, engine: Any | None = None) -> None:
        from rtprune.engines.hf.engine import OcrEngine

        self.engine = (
            engine if engine is not None else OcrEngine(engine_config.model_copy(update={"prune": UNPRUNED}))
        )

    def warm_up(self, image: Any) -> None:
        """One untimed page, so lazy initialisation and allocator growth are not billed to the first
        setting (which would make the unpruned reference look dearer than it is)."""
        self.engine.ocr([image])

    def __call__(self, images: Sequence[Any], settings: Sequence[PruneConfig]) -> list[list[PageResult]]:
        pages = self.engine.prepare(images)
        features, encode_s = self.engine.encode(pages)
        out = []
        for config in settings:
            pruned, prune_s = self.engine.prune(pages, features, config)
            generation = self.engine.generate(pruned)
            out.append(self.engine.results(pruned, generation, encode_s, prune_s))
        return out


def engine_runner(engine_config: EngineConfig) -> SettingsRunner:
    return EngineSettingsRunner(engine_config)
