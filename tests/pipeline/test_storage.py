import pytest

from pipeline.config import StorageConfig
from pipeline.store.listing import content_hash_of, doc_id_for, list_documents


def test_listing_folder_glob_and_manifest(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.pdf", "a.PDF", "sub/c.pdf", "notes.txt"):
        (tmp_path / name).write_bytes(b"%PDF-1.4 " + name.encode())
    folder = list_documents(str(tmp_path), StorageConfig())
    assert [d.source_uri.rsplit("/", 1)[1] for d in folder] == ["a.PDF", "b.pdf", "c.pdf"]
    globbed = list_documents(str(tmp_path / "*.pdf"), StorageConfig(), glob=True)
    assert [d.source_uri.rsplit("/", 1)[1] for d in globbed] == ["b.pdf"]
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"# comment\n{tmp_path / 'sub/c.pdf'}\n\n{tmp_path / 'b.pdf'}\n")
    listed = list_documents(str(manifest), StorageConfig())
    assert {d.doc_id for d in listed} == {d.doc_id for d in folder if not d.source_uri.endswith("a.PDF")}


def test_doc_id_is_stable_and_content_hash_tracks_changes(tmp_path):
    path = tmp_path / "x.pdf"
    path.write_bytes(b"one")
    first = list_documents(str(path), StorageConfig())[0]
    path.write_bytes(b"two!")
    second = list_documents(str(path), StorageConfig())[0]
    assert first.doc_id == second.doc_id == doc_id_for(first.source_uri) and len(first.doc_id) == 16
    assert first.content_hash != second.content_hash


def test_content_hash_prefers_etag():
    assert content_hash_of({"ETag": '"abc"', "size": 3}) == "etag:abc"
    assert content_hash_of({"size": 3, "mtime": 1.5}) == "size:3-mtime:1.5"


def test_missing_input_is_fatal_and_redacted(tmp_path):
    with pytest.raises(FileNotFoundError, match="input not found") as info:
        list_documents(str(tmp_path / "nope"), StorageConfig())
    assert "nope" in str(info.value)


def test_missing_manifest_entry_is_listed_as_that_documents_error(tmp_path):
    (tmp_path / "here.pdf").write_bytes(b"%PDF-1.4 here")
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"{tmp_path / 'here.pdf'}\n{tmp_path / 'gone.pdf'}\n")
    gone, here = list_documents(str(manifest), StorageConfig())  # sorted by name
    assert here.error == "" and here.source_uri == f"file://{tmp_path / 'here.pdf'}"
    assert gone.error and gone.source_uri == f"file://{tmp_path / 'gone.pdf'}"
    assert gone.doc_id == doc_id_for(gone.source_uri) and gone.content_hash == "missing"


def test_missing_manifest_itself_stays_fatal(tmp_path):
    with pytest.raises(FileNotFoundError):
        list_documents(str(tmp_path / "absent.txt"), StorageConfig())


def test_a_glob_that_matches_nothing_is_fatal(tmp_path):
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4")
    with pytest.raises(FileNotFoundError, match="matched nothing"):
        list_documents(str(tmp_path / "*.pfd"), StorageConfig(), glob=True)
    assert [
        d.source_uri.rsplit("/", 1)[-1]
        for d in list_documents(str(tmp_path / "*.pdf"), StorageConfig(), glob=True)
    ] == ["a.pdf"]
