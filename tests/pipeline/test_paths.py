"""The output layout: keys as written on disk (files written by earlier versions must stay readable) and
every parser as the inverse of its builder, on keys and on the full paths a listing returns."""

import fnmatch

import pytest

from pipeline.store import paths


def test_keys_keep_the_layout_on_disk():
    assert paths.part_key("run-1", 7) == "pages/run-1/part-000007.parquet"
    assert paths.ledger_key("run-1", 7) == "_ledger/run-1/000007.json"
    assert paths.summary_key("run-1") == "runs/run-1/summary.json"
    assert paths.index_manifest_key(3) == "_index/manifest-0000000003.json"
    assert paths.index_bucket_key(3, "ab12cd34", 5) == "_index/g0000000003-ab12cd34/b00005.parquet"
    assert paths.open_key("run-1") == "_index/open/run-1"


@pytest.mark.parametrize("root", ["", "/data/out/", "bucket/out/"])
@pytest.mark.parametrize("seq", [0, 41, 1_234_567])
def test_parsers_invert_the_builders(root, seq):
    part, ledger = root + paths.part_key("r-2", seq), root + paths.ledger_key("r-2", seq)
    assert (paths.part_seq(part), paths.run_of(part)) == (seq, "r-2")
    assert (paths.ledger_seq(ledger), paths.run_of(ledger)) == (seq, "r-2")
    assert paths.index_gen(root + paths.index_manifest_key(seq)) == seq
    bucket = paths.index_bucket_key(seq, "ab12cd34", 9)
    assert paths.index_gen(root + paths.index_folder_of(bucket)) == seq
    assert paths.index_folder_of(bucket) == paths.index_folder_key(seq, "ab12cd34")
    assert paths.open_run(root + paths.open_key("r-2")) == "r-2"


def test_globs_match_their_keys_only():
    assert fnmatch.fnmatch(paths.part_key("a", 1), paths.PART_GLOB)
    assert fnmatch.fnmatch(paths.part_key("a", 1), paths.run_part_glob("a"))
    assert not fnmatch.fnmatch(paths.part_key("b", 1), paths.run_part_glob("a"))
    assert fnmatch.fnmatch(paths.ledger_key("a", 1), paths.LEDGER_GLOB)
    assert fnmatch.fnmatch(paths.ledger_key("a", 1), paths.run_ledger_glob("a"))
    assert fnmatch.fnmatch(paths.summary_key("a"), paths.SUMMARY_GLOB)
    assert fnmatch.fnmatch(paths.index_manifest_key(1), paths.INDEX_MANIFEST_GLOB)
    assert fnmatch.fnmatch(paths.index_folder_key(1, "n"), paths.INDEX_FOLDER_GLOB)
    assert not fnmatch.fnmatch(paths.open_key("a"), paths.INDEX_FOLDER_GLOB)


def test_index_gen_refuses_other_names():
    with pytest.raises(ValueError):
        paths.index_gen("_index/open")
