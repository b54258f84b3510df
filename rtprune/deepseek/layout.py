"""TokenLayout: what each visual token of a page is (feature, newline, separator, padding) and where its cell
lies. Made by the preprocessing rules (v1_preprocess, the v2 adapter), read by pruning in both engines."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenLayout:
    """What each visual token of one page is, in the order the model consumes them.

    n_tokens:    N, all visual positions of the page (features + newlines + separators).
    protected:   (N,) bool, never pruned (v1 newline tokens, view separators).
    newline:     (N,) bool or None; v1 row terminators. A run of newlines left by a fully pruned row is
                 collapsed to one by the engine.
    padding:     (N,) bool or None; tokens whose image cell is padding added to square the page.
    token_boxes: (N, 4) float or None; each token's cell as (x0, y0, x1, y1) in page-image pixels of
                 `PreparedPage.image_gray`; NaN rows for tokens without a spatial cell.
    """

    n_tokens: int
    protected: torch.Tensor
    newline: torch.Tensor | None = None
    padding: torch.Tensor | None = None
    token_boxes: torch.Tensor | None = None
