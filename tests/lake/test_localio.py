"""The local FileIO: what pyiceberg writes through it is there, and nothing is clobbered."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.lake.localio import LocalFileIO


def test_files_are_written_read_and_deleted_under_their_uri(tmp_path: Path) -> None:
    io = LocalFileIO()
    uri = (tmp_path / "a b" / "metadata" / "00001.json").as_uri()
    out = io.new_output(uri)
    assert not out.exists()
    with out.create() as stream:
        stream.write(b'{"format-version": 2}')
    assert out.exists() and len(out) == 21
    with out.to_input_file().open() as stream:
        assert stream.read() == b'{"format-version": 2}'
    with pytest.raises(FileExistsError):
        out.create()
    with out.create(overwrite=True) as stream:
        stream.write(b"{}")
    assert (tmp_path / "a b" / "metadata" / "00001.json").read_bytes() == b"{}"
    io.delete(out)
    assert not io.new_input(uri).exists()
    with pytest.raises(FileNotFoundError):
        io.new_input(uri).open()


def test_remote_locations_are_refused() -> None:
    with pytest.raises(ValueError, match="local files only"):
        LocalFileIO().new_input("s3://bucket/wh/t/metadata/1.json").exists()
