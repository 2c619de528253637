"""kettle.evaluation.data: BEIR's layout, titles joined as BEIR joins them, the corpus streamed,
and bad data as one line naming the file and line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kettle.__main__ import main
from kettle.evaluation.data import DataError, load
from tests.conftest import MINILM
from tests.kettle.evaluation._beir import write_beir

CORPUS = [
    {"_id": "d1", "title": "Kettle", "text": "A kettle boils water."},
    {"_id": "d2", "title": "", "text": "  Tea steeps for three minutes. "},
    {"_id": "d3", "text": "No title at all."},
    {"_id": 4, "title": None, "text": "A numeric id."},
]
QUERIES = [{"_id": "q1", "text": "what boils water?"}, {"_id": "q2", "text": "unjudged"}]


def test_reads_beir_and_joins_titles(tmp_path):
    data = load(write_beir(tmp_path, CORPUS, QUERIES, [("q1", "d1", 2), ("q1", "4", 0)]))
    assert data.corpus_ids == ["d1", "d2", "d3", "4"]
    assert data.queries == {"q1": "what boils water?"}  # only judged queries, as BEIR's loader
    assert data.qrels == {"q1": {"d1": 2, "4": 0}}
    stream = data.passages()
    assert isinstance(stream, Iterator)  # read a line at a time, not a list in memory
    texts = list(stream)
    assert texts == [
        "Kettle A kettle boils water.",  # (title + " " + text).strip(), BEIR's SentenceBERT
        "Tea steeps for three minutes.",
        "No title at all.",
        "A numeric id.",
    ]
    assert data.passage_texts([2, 0]) == [texts[2], texts[0]]  # by byte offset


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "where", "what"),
    [
        (
            [CORPUS[0], "{not json"],
            QUERIES,
            [("q1", "d1", 1)],
            "corpus.jsonl:2:",
            "not a JSON line",
        ),
        (
            CORPUS,
            [QUERIES[0], "[1, 2]"],
            [("q1", "d1", 1)],
            "queries.jsonl:2:",
            "expected a JSON object",
        ),
        (
            [CORPUS[0], {"_id": "d2", "title": "t"}],
            QUERIES,
            [("q1", "d1", 1)],
            "corpus.jsonl:2:",
            '"text" must be a string, got nothing',
        ),
        ([CORPUS[0], CORPUS[0]], QUERIES, [("q1", "d1", 1)], "corpus.jsonl:2:", "repeats line 1"),
        (
            CORPUS,
            QUERIES,
            [("q1", "d1", 1), ("q1", "zz", 1)],
            "test.tsv:3:",
            "corpus-id 'zz' is not in corpus.jsonl",
        ),
        (
            CORPUS,
            QUERIES,
            [("q1", "d1", 1), ("q9", "d1", 1)],
            "test.tsv:3:",
            "query-id 'q9' is not in queries.jsonl",
        ),
        (CORPUS, QUERIES, [("q1", "d1", "high")], "test.tsv:2:", "'high' is not an integer"),
        (CORPUS, QUERIES, [("q1", "d1")], "test.tsv:2:", "got 2 field(s)"),
    ],
)
def test_bad_data_is_one_line_naming_file_and_line(
    tmp_path, capsys, models_dir, corpus, queries, qrels, where, what
):
    folder = write_beir(tmp_path, corpus, queries, qrels)
    with pytest.raises(DataError) as caught:
        load(folder)
    message = str(caught.value)
    assert where in message and what in message, message
    # the command: exit 1, that one line on stderr, no traceback
    argv = ["eval", str(folder), "--model", MINILM, "--models-dir", str(models_dir)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert where in err and what in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_missing_file_is_named(tmp_path):
    folder = write_beir(tmp_path, CORPUS, QUERIES, [("q1", "d1", 1)])
    (folder / "qrels" / "test.tsv").unlink()
    with pytest.raises(DataError, match=r"qrels/test\.tsv: no such file"):
        load(folder)
    with pytest.raises(DataError, match="not a folder"):
        load(tmp_path / "nowhere")
