"""vLLM's known-noise warnings, dropped when vLLM logs at WARNING (the engine's default, VllmSettings.log_level):
lines every CPU or eager start prints that say nothing a user can act on (the engine chose them, or they
describe vLLM's own fallbacks). At INFO or DEBUG (VLLM_LOGGING_LEVEL, or pools.ocr_vllm.log_level) nothing is
dropped. Installed by the plugin's register(), which runs in every vLLM process."""

from __future__ import annotations

import logging
import os

# Substrings of the warnings dropped, each a line vLLM prints on every start in the settings this project
# chooses (CPU build, enforce_eager, OMP threads set by the engine, the plugin's raw prompts).
KNOWN_NOISE = (
    "doesn't allow to use `torch.set_num_threads`",
    "is set; leaving Torch threads at",
    "Model Runner V2 requires Triton",
    "Enforce eager set, disabling torch.compile",
    "Inductor compilation was disabled by user settings",
    "Triton is not installed. triton-cpu is expected",
    "Passing raw prompts to InputProcessor is deprecated",
    "does not support mm_device_do_normalize",
)


class KnownNoise(logging.Filter):
    """Drops a record whose message holds one of KNOWN_NOISE."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in KNOWN_NOISE)


def drop_known_noise() -> bool:
    """Add KnownNoise to the handlers of vLLM's logger (idempotent) unless vLLM logs below WARNING;
    -> whether it is in place."""
    level = logging.getLevelName(os.environ.get("VLLM_LOGGING_LEVEL", "INFO").upper())
    if not isinstance(level, int) or level < logging.WARNING:
        return False
    for handler in logging.getLogger("vllm").handlers:
        if not any(isinstance(f, KnownNoise) for f in handler.filters):
            handler.addFilter(KnownNoise())
    return True
