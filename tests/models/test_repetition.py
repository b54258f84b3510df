import copy

import torch

from rtprune.deepseek.repetition import RepetitionGuard, repeats_in_window, whitelist_ids
from rtprune.models.tiny_tokenizer import build_tiny_tokenizer


def ids(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


def test_a_cycle_triggers_once_the_tail_ngram_recurs():
    cycle = [5, 6, 7] * 3  # 5 6 7 5 6 7 5 6 7
    assert repeats_in_window(ids(*cycle), ngram=4, window=20, whitelist=frozenset())
    assert not repeats_in_window(ids(*cycle[:6]), ngram=4, window=20, whitelist=frozenset())
    assert repeats_in_window(ids(*cycle[:7]), ngram=4, window=20, whitelist=frozenset())


def test_distinct_tokens_and_a_too_short_sequence_do_not_trigger():
    assert not repeats_in_window(ids(*range(50)), ngram=3, window=40, whitelist=frozenset())
    assert not repeats_in_window(ids(9, 9, 9), ngram=3, window=40, whitelist=frozenset())
    assert repeats_in_window(ids(9, 9, 9, 9), ngram=3, window=40, whitelist=frozenset())


def test_an_old_occurrence_outside_the_window_does_not_count():
    seq = [1, 2, 3] + list(range(10, 30)) + [1, 2, 3]
    assert repeats_in_window(ids(*seq), ngram=3, window=len(seq), whitelist=frozenset())
    assert not repeats_in_window(ids(*seq), ngram=3, window=len(seq) - 1, whitelist=frozenset())


def test_an_ngram_of_only_whitelisted_ids_never_triggers():
    cells = [40, 41] * 10  # <td></td><td></td>...
    assert not repeats_in_window(ids(*cells), ngram=4, window=20, whitelist=frozenset({40, 41}))
    mixed = [40, 7, 41] * 5
    assert repeats_in_window(ids(*mixed), ngram=4, window=20, whitelist=frozenset({40, 41}))


def test_guard_forces_eos_on_the_looping_row_only_and_ignores_the_prompt():
    prompt = torch.full((2, 6), 99)  # repeated image placeholders must not count
    generated = torch.tensor([[3, 4, 3, 4, 3], [3, 4, 5, 6, 7]])
    guard = RepetitionGuard(prompt_len=6, ngram=2, window=8, eos_token_id=1)
    scores = guard(torch.cat([prompt, generated], dim=1), torch.zeros(2, 10))
    assert guard.stopped == {0}
    assert int(scores[0].argmax()) == 1 and scores[1].eq(0).all()


def test_guard_leaves_rows_that_already_ended_alone():
    guard = RepetitionGuard(prompt_len=0, ngram=2, window=8, eos_token_id=1)
    finished = torch.tensor([[5, 1, 2, 2, 2, 2]])  # EOS, then the padding of a finished row
    guard(finished, torch.zeros(1, 10))
    assert guard.stopped == set()


def test_whitelist_resolves_cell_tags_from_the_tokenizer():
    tok = build_tiny_tokenizer(512, 400)
    assert whitelist_ids(tok) == frozenset()
    with_tags = copy.deepcopy(tok)
    with_tags.add_tokens(["<td>", "</td>"])
    assert whitelist_ids(with_tags) == frozenset(with_tags.convert_tokens_to_ids(["<td>", "</td>"]))


def test_a_row_that_ended_long_ago_stays_ended_when_called_step_by_step():
    guard = RepetitionGuard(prompt_len=1, ngram=2, window=4, eos_token_id=1)
    sequence = torch.tensor([[0, 5, 6, 1] + [2] * 10])  # prompt, two tokens, EOS, then padding
    for length in range(1, sequence.shape[1] + 1):  # what generate passes at each step
        guard(sequence[:, :length], torch.zeros(1, 10))
    assert guard.stopped == set()
