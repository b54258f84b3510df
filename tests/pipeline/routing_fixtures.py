"""The routing set and its features, built once per test process (generating and measuring it costs
seconds), shared by the routing tests."""

from __future__ import annotations

import functools

from pipeline.routing_set import LabelledPage, labelled_pages
from pipeline.stages.routing_fit import Sample, labelled_samples


@functools.cache
def routing_pages() -> tuple[LabelledPage, ...]:
    return tuple(labelled_pages(seed=0))


@functools.cache
def routing_samples() -> tuple[Sample, ...]:
    return tuple(labelled_samples(pages=routing_pages()))
