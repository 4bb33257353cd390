"""What the kernel sends is bounded in parsed size before it becomes Python objects in the grader: event and
reply lines by their count of JSON objects and lists, JSON outputs kept in the notebook by their values."""

from __future__ import annotations

import json
import tracemalloc

from gradekit.judge.driver import MAX_JSON_NODES, clean_output
from gradekit.sandbox.executors import MAX_CONTAINERS, within_parse_budget


def test_a_line_of_millions_of_empty_objects_is_refused_before_parsing():
    bomb = ("[" + "{}," * 1_500_000 + "{}]").encode()  # 4.5 MB of text, 1.5 M objects once parsed
    assert len(bomb) < 32 * 2**20 and not within_parse_budget(bomb)
    assert within_parse_budget(json.dumps({"ok": [[0.5] * 1000] * 100}))  # a real answer: 101 lists


def test_a_json_output_too_big_to_keep_becomes_a_line_of_text():
    output = {"output_type": "display_data", "data": {"application/json": [{}] * (MAX_JSON_NODES * 10)}}
    clean_output({"output_type": "display_data", "data": {"text/plain": "warm"}})  # nbformat loads its schema
    tracemalloc.start()
    clean = clean_output(output)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "application/json" not in clean.data and "too large to keep" in clean.data["text/plain"]
    assert peak < 1 * 2**20  # nothing of it rebuilt (it would be ~10 MB)
    small = clean_output({"output_type": "display_data", "data": {"application/json": {"a": [1, 2, {"b": 3}]}}})
    assert small.data["application/json"] == {"a": [1, 2, {"b": 3}]}


def test_the_budget_allows_every_honest_answer_shape():
    # A (1000, 1000) tensor travels as base64 data ("$t"), not as nested lists: one object.
    assert MAX_CONTAINERS >= 100_000
