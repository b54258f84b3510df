"""The batch-failure policy of the OCR step, on plain callables (the helper is generic over fn)."""

from pipeline.stages.ocr import cost_sorted_batches, run_resilient
from pipeline.stages.rows import PageFailure


class FakeOOM(Exception):
    pass


def test_oom_splits_in_halves_until_batches_fit():
    calls: list[list[int]] = []

    def fn(items):
        calls.append(list(items))
        if len(items) > 2:
            raise FakeOOM("CUDA out of memory")
        return [i * 10 for i in items]

    freed = []
    assert run_resilient(fn, [1, 2, 3, 4, 5], (FakeOOM,), lambda: freed.append(1)) == [10, 20, 30, 40, 50]
    assert calls[0] == [1, 2, 3, 4, 5] and [1, 2] in calls and [4, 5] in calls and len(freed) == 2


def test_single_page_oom_becomes_that_page_error():
    def fn(items):
        if 99 in items:
            raise FakeOOM("too big")
        return items

    out = run_resilient(fn, [1, 99, 3], (FakeOOM,))
    assert out[0] == 1 and out[2] == 3 and out[1].stage == "ocr"
    assert "out of memory on a single page" in out[1].reason and "too big" in out[1].reason


def test_other_failures_retry_pages_one_by_one_so_only_the_bad_page_fails():
    def fn(items):
        if 7 in items:
            raise ValueError("bad page 7")
        return [-i for i in items]

    out = run_resilient(fn, [5, 7, 9], (FakeOOM,))
    assert out == [-5, PageFailure("ocr", "ValueError: bad page 7"), -9]


def test_wrong_result_count_is_a_failure_not_a_silent_drop():
    out = run_resilient(lambda items: [], [1, 2], (FakeOOM,))
    assert out == [PageFailure("ocr", "RuntimeError: engine returned 0 results for 1 pages")] * 2


def test_cost_sorted_batches_group_similar_pages():
    costs = [400, 64, 256, 64, 400, 100]
    batches = cost_sorted_batches(costs, 2)
    assert [[costs[i] for i in b] for b in batches] == [[64, 64], [100, 256], [400, 400]]
    assert sorted(i for b in batches for i in b) == list(range(6))
