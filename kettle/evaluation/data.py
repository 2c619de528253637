"""A BEIR-format retrieval set read from disk: queries and qrels in memory, the corpus streamed.

The layout is BEIR's (``GenericDataLoader``): ``corpus.jsonl`` (``_id``, ``title``, ``text``),
``queries.jsonl`` (``_id``, ``text``) and ``qrels/test.tsv`` (``query-id``, ``corpus-id``,
``score``, with a header line). As in BEIR, only the queries the qrels judge are evaluated, and a
passage's text is ``(title + " " + text).strip()``. The corpus is read twice, a line at a time:
once to check it and note each line's byte offset, once to embed it; a passage's text is read
back by its offset when a reranker needs it, so passages' texts are never all in memory.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CORPUS, QUERIES, QRELS = "corpus.jsonl", "queries.jsonl", "qrels/test.tsv"
TITLE_SEPARATOR = " "  # BEIR's SentenceBERT.sep


class DataError(ValueError):
    """A retrieval set that cannot be read: the message names the file and line."""


@dataclass
class BeirSet:
    """Queries and qrels in memory; the corpus as ids and byte offsets into ``corpus.jsonl``."""

    folder: Path
    queries: dict[str, str]  # only the judged ones, in qrels order
    qrels: dict[str, dict[str, int]]  # query id -> passage id -> graded relevance
    corpus_ids: list[str] = field(repr=False)
    offsets: list[int] = field(repr=False)

    @property
    def corpus_path(self) -> Path:
        return self.folder / CORPUS

    def __len__(self) -> int:
        return len(self.corpus_ids)

    def passages(self) -> Iterator[str]:
        """Every passage's text, in file order, read from disk a line at a time."""
        with open(self.corpus_path, "rb") as fh:
            for line_no, line in enumerate(fh, 1):
                if line.strip():
                    yield _passage_text(_json_object(line, self.corpus_path, line_no))

    def passage_texts(self, indices: list[int]) -> list[str]:
        """The texts of ``indices``, one file open for all of them."""
        with open(self.corpus_path, "rb") as fh:
            texts = []
            for i in indices:
                fh.seek(self.offsets[i])
                texts.append(_passage_text(json.loads(fh.readline())))
            return texts


def _where(path: Path, line_no: int | None = None) -> str:
    return f"{path}:{line_no}" if line_no is not None else str(path)


def _json_object(line: bytes, path: Path, line_no: int) -> dict:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{_where(path, line_no)}: not a JSON line ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{_where(path, line_no)}: not UTF-8 ({exc.reason})") from None
    if not isinstance(item, dict):
        raise DataError(
            f"{_where(path, line_no)}: expected a JSON object, got {type(item).__name__}"
        )
    return item


def _passage_text(item: dict) -> str:
    title = item.get("title") or ""
    return (title + TITLE_SEPARATOR + item["text"]).strip() if title else item["text"].strip()


def _record(item: dict, path: Path, line_no: int, fields: tuple[str, ...]) -> str:
    """The item's ``_id`` as a string, after checking its fields are strings."""
    if "_id" not in item:
        raise DataError(f'{_where(path, line_no)}: no "_id"')
    key = item["_id"]
    if not isinstance(key, (str, int)) or isinstance(key, bool):
        raise DataError(f'{_where(path, line_no)}: "_id" must be a string, got {key!r}')
    for name in fields:
        value = item.get(name)
        if name == "title" and value is None:
            continue
        if not isinstance(value, str):
            got = "nothing" if name not in item else type(value).__name__
            raise DataError(f'{_where(path, line_no)}: "{name}" must be a string, got {got}')
    return str(key)


def _require(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: no such file (a BEIR folder holds {CORPUS}, {QUERIES}, {QRELS})")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> passage id -> score, from a TSV with a header line (BEIR's reader skips it)."""
    _require(path)
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        try:
            next(rows)
            for row in rows:
                line_no = rows.line_num
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 3:
                    raise DataError(
                        f"{_where(path, line_no)}: expected query-id, corpus-id, score "
                        f"separated by tabs, got {len(row)} field(s)"
                    )
                try:
                    score = int(row[2])
                except ValueError:
                    raise DataError(
                        f"{_where(path, line_no)}: score {row[2]!r} is not an integer"
                    ) from None
                qrels.setdefault(row[0], {})[row[1]] = score
        except StopIteration:
            pass
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{_where(path, rows.line_num + 1)}: unreadable ({exc})") from None
    if not qrels:
        raise DataError(f"{path}: no judgments after the header line")
    return qrels


def load(folder: str | os.PathLike) -> BeirSet:
    """Read and check ``folder``: every line parses, every qrel names a known query and passage.

    Raises DataError with the file and line of the first problem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"{folder}: not a folder (a BEIR folder holds {CORPUS}, {QUERIES}, {QRELS})"
        )
    corpus_path, queries_path = folder / CORPUS, folder / QUERIES
    for path in (corpus_path, queries_path):
        _require(path)
    qrels = read_qrels(folder / QRELS)

    all_queries: dict[str, str] = {}
    with open(queries_path, "rb") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                item = _json_object(line, queries_path, line_no)
                all_queries[_record(item, queries_path, line_no, ("text",))] = item["text"]

    ids: list[str] = []
    offsets: list[int] = []
    seen: dict[str, int] = {}
    with open(corpus_path, "rb") as fh:
        offset = 0
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                item = _json_object(line, corpus_path, line_no)
                key = _record(item, corpus_path, line_no, ("text", "title"))
                if key in seen:
                    raise DataError(
                        f"{_where(corpus_path, line_no)}: _id {key!r} repeats line {seen[key]}"
                    )
                seen[key] = line_no
                ids.append(key)
                offsets.append(offset)
            offset += len(line)
    if not ids:
        raise DataError(f"{corpus_path}: no passages")

    _check_qrels(folder / QRELS, qrels, all_queries, seen)
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirSet(folder, queries, qrels, ids, offsets)


def _check_qrels(path: Path, qrels: dict, queries: dict, corpus: dict) -> None:
    """A qrel naming an unknown query or passage: an error at its line (read again for it)."""
    if all(q in queries for q in qrels) and all(d in corpus for r in qrels.values() for d in r):
        return
    with open(path, encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        next(rows)
        for row in rows:
            if len(row) < 3:
                continue
            if row[0] not in queries:
                raise DataError(
                    f"{_where(path, rows.line_num)}: query-id {row[0]!r} is not in {QUERIES}"
                )
            if row[1] not in corpus:
                raise DataError(
                    f"{_where(path, rows.line_num)}: corpus-id {row[1]!r} is not in {CORPUS}"
                )
