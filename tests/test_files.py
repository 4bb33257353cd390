"""Files a person reads appear whole or not at all (gradekit.course.files)."""

from __future__ import annotations

import pytest

from gradekit.course.files import atomic_open, write_bytes, write_text


def test_an_interrupted_write_leaves_the_previous_file_and_no_partial_file(tmp_path):
    path = tmp_path / "reports" / "grades.csv"
    write_text(path, "student,points\nada,40\n")
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as stream:  # Ctrl-C halfway through
        stream.write("student,points\n")
        raise KeyboardInterrupt
    assert path.read_text() == "student,points\nada,40\n"
    assert [p.name for p in path.parent.iterdir()] == ["grades.csv"]


def test_a_full_disk_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "lab1.ipynb"
    write_bytes(path, b'{"cells": []}')

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gradekit.course.files.os.fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        write_bytes(path, b"x" * 1000)
    assert path.read_bytes() == b'{"cells": []}' and len(list(tmp_path.iterdir())) == 1


def test_a_written_file_is_readable_like_any_other(tmp_path):
    path = tmp_path / "page.html"
    write_text(path, "<p>é</p>")
    assert path.read_text(encoding="utf-8") == "<p>é</p>" and path.stat().st_mode & 0o777 == 0o644
