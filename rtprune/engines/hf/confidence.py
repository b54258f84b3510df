"""The decoder's confidence on the transformers engine: the log-probability of every token generate chose.

A logits processor (duck-typed, so this module needs no transformers import) placed first in generate's
list sees each step's scores before the repetition guard and before sampling's warpers (transformers adds
temperature, top-k and top-p after the caller's processors), in fp32. The token chosen from one step's
scores only comes back as the last input id of the next step, so the processor keeps the last step's
log-softmax (B, V) and gathers from it then; the final step's choice is taken from generate's output.
Per step that is one log-softmax and one gather on the device, and one (B,) tensor kept: no host copy
until the end.
"""

from __future__ import annotations

import torch


class ChosenTokenLogprobs:
    """Records, for every row of a generate call, the log-probability of the token chosen at each step
    under the model's distribution (log-softmax of the raw scores in fp32). Use one per generate call."""

    def __init__(self) -> None:
        self._last: torch.Tensor | None = None  # (B, V) log-probs of the latest step, its choice not yet seen
        self._chosen: list[torch.Tensor] = []  # one (B,) tensor per step whose choice was seen

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids (B, L), scores (B, V) -> scores unchanged."""
        if self._last is not None:
            self._chosen.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def per_step(self, new_ids: torch.Tensor) -> torch.Tensor:
        """new_ids (B, T): generate's output after the prompt -> (B, T) fp32 log-probs on the CPU, column t
        the log-probability of new_ids[:, t] at the step that chose it (padding after a row's EOS included:
        the caller trims each row to its length)."""
        steps = new_ids.shape[1]
        chosen = list(self._chosen)
        if self._last is not None and len(chosen) < steps:  # the last step's choice is only in the output
            last = new_ids[:, len(chosen)].to(self._last.device)
            chosen.append(self._last.gather(1, last[:, None]).squeeze(1))
        if len(chosen) != steps:
            raise RuntimeError(f"recorded {len(chosen)} steps for {steps} generated tokens")
        if not chosen:
            return torch.zeros((new_ids.shape[0], 0), dtype=torch.float32)
        return torch.stack(chosen, dim=1).cpu()
