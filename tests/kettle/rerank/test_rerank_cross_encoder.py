"""TextCrossEncoder on a random cross-encoder baked by the tests: scores against an independent
numpy forward pass, ordering, sigmoid, truncation on the document side, fidelity, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _rerank_model import MAX_LENGTH, convert_ref
from tokenizers import Tokenizer

from kettle.registry import DEFAULT_MODEL, DEFAULT_RERANK_MODEL, get_model
from kettle.rerank import RerankResult, TextCrossEncoder, check_pairs, sigmoid
from models_bake.bake import bake
from models_bake.verify import rerank_fidelity
from tests.conftest import REPO

QUERY = "how do I boil water quickly?"
DOCS = [
    "Put a lid on the pot and use high heat.",
    "Paris is the capital of France.",
    "An electric kettle boils water faster than a gas stove.",
    "",
    "Water boils at 100 degrees Celsius at sea level; salt raises the boiling point slightly.",
    "SELECT * FROM kettles WHERE watts > 2000;",
]


@pytest.fixture(scope="module")
def fp32(rerank_fp32_dir, cross_encoder_name) -> TextCrossEncoder:
    return TextCrossEncoder(cross_encoder_name, models_dir=rerank_fp32_dir, threads=1)


@pytest.fixture(scope="module")
def int8(rerank_int8_dir, cross_encoder_name) -> TextCrossEncoder:
    return TextCrossEncoder(cross_encoder_name, models_dir=rerank_int8_dir, threads=1)


def reference_scores(checkpoint, encodings) -> np.ndarray:
    """The numpy BERT of tests/bake/convert, one unpadded pair at a time."""
    _, cfg, sd = checkpoint
    ref = convert_ref()
    out = []
    for e in encodings:
        ids, types = np.array([e.ids]), np.array([e.type_ids])
        out.append(
            ref.reference_forward(
                cfg, sd, ids, np.ones_like(ids), types, "BertForSequenceClassification"
            )[0, 0]
        )
    return np.array(out)


def test_fp32_scores_match_the_numpy_forward(fp32, cross_encoder_checkpoint):
    folder = cross_encoder_checkpoint[0]
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    pairs = [(QUERY, d) for d in DOCS] + [(d, QUERY) for d in DOCS[:3]]
    encodings = tok.encode_batch(pairs)
    assert max(len(e.ids) for e in encodings) < MAX_LENGTH  # no truncation in this test
    assert [e.ids for e in fp32.encode_pairs(pairs)] == [e.ids for e in encodings]
    want = reference_scores(cross_encoder_checkpoint, encodings)
    assert np.ptp(want) > 0.05  # the random model does tell pairs apart
    for batch_size in (1, 4, 64):
        got = fp32.rerank_pairs(pairs, batch_size=batch_size)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_rerank_orders_best_first(fp32):
    scores = fp32.rerank_pairs([(QUERY, d) for d in DOCS])
    results = fp32.rank(QUERY, DOCS)
    assert all(isinstance(r, RerankResult) for r in results)
    assert sorted(r.index for r in results) == list(range(len(DOCS)))
    assert [r.score for r in results] == sorted(scores, reverse=True)
    assert all(r.score == scores[r.index] and r.document is None for r in results)
    top = fp32.rank(QUERY, iter(DOCS), top_n=2, return_documents=True)
    assert [(r.index, r.document) for r in top] == [(r.index, DOCS[r.index]) for r in results[:2]]
    assert fp32.rank(QUERY, []) == []


def test_rerank_is_fastembeds_scores_in_input_order(fp32):
    """FastEmbed's rerank(query, documents, batch_size) yields a score per document in input
    order; a program switched from FastEmbed must get those, not a ranking."""
    scores = list(fp32.rerank(QUERY, DOCS, batch_size=2))
    assert scores == fp32.rerank_pairs([(QUERY, d) for d in DOCS])
    assert scores != sorted(scores, reverse=True)  # the input order is not the ranked one
    probs = list(fp32.rerank(QUERY, iter(DOCS), sigmoid=True))
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-np.array(scores))), rtol=1e-6)
    with pytest.raises(TypeError, match=r"documents\[1\] is int"):
        fp32.rerank(QUERY, ["a", 3])
    with pytest.raises(ValueError, match=r"query: lone surrogate U\+D800 at character 1"):
        fp32.rerank("q\ud800", DOCS)


def test_sigmoid_option(fp32):
    pairs = [(QUERY, d) for d in DOCS]
    raw = np.array(fp32.rerank_pairs(pairs))
    probs = np.array(fp32.rerank_pairs(pairs, sigmoid=True))
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-raw)), rtol=1e-12)
    assert ((probs > 0) & (probs < 1)).all()
    ranked = fp32.rank(QUERY, DOCS, sigmoid=True)
    assert [r.index for r in ranked] == [r.index for r in fp32.rank(QUERY, DOCS)]
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]


def test_long_document_is_cut_and_the_query_kept(fp32, cross_encoder_checkpoint):
    long_doc = " ".join(["boiling water in a kettle"] * 200)
    [enc] = fp32.encode_pairs([(QUERY, long_doc)])
    assert len(enc.ids) == MAX_LENGTH
    query_tokens = len(fp32.tokenizer.tokenizer.encode(QUERY).ids)  # [CLS] query [SEP]
    assert enc.type_ids.count(0) == query_tokens
    want = reference_scores(cross_encoder_checkpoint, [enc])
    np.testing.assert_allclose(fp32.rerank_pairs([(QUERY, long_doc)]), want, atol=1e-4)


def test_query_too_long_for_document_first_falls_back(fp32):
    long_query = " ".join(["why"] * 300)
    pairs = [(QUERY, "short"), (long_query, "a short document"), (long_query, "")]
    encodings = fp32.encode_pairs(pairs)
    assert [len(e.ids) <= MAX_LENGTH for e in encodings] == [True] * 3
    assert encodings[1].type_ids.count(1) > 0  # longest_first leaves the document some tokens
    assert [e.ids for e in encodings[:1]] == [e.ids for e in fp32.encode_pairs(pairs[:1])]
    assert len(fp32.rerank_pairs(pairs)) == 3


@pytest.mark.bakes
def test_int8_bake_fidelity(int8, fp32):
    fidelity = int8.manifest.fidelity
    assert int8.manifest.quantization["weight_type"] == "QInt8"
    assert fidelity["mean_cosine"] >= fidelity["min_cosine_gate"] == 0.99
    for key in ("spearman", "top1_agreement", "top10_agreement", "min_cosine"):
        assert 0.9 <= fidelity[key] <= 1.0, key
    pairs = [(QUERY, d) for d in DOCS]
    diff = np.abs(np.array(int8.rerank_pairs(pairs)) - fp32.rerank_pairs(pairs))
    assert diff.max() <= max(0.1, 2 * fidelity["max_abs_score_diff"])


@pytest.mark.bakes
def test_rerank_measure(cross_encoder_name, rerank_fp32_dir, rerank_int8_dir):
    texts = DOCS + ["hot water", "a cup of tea", "cold brew coffee takes hours"]
    same = rerank_fidelity(cross_encoder_name, rerank_fp32_dir, rerank_fp32_dir, texts)
    assert same["mean_cosine"] == pytest.approx(1.0) and same["spearman"] == pytest.approx(1.0)
    assert same["max_abs_score_diff"] == 0.0 and same["top1_agreement"] == 1.0
    other = rerank_fidelity(cross_encoder_name, rerank_fp32_dir, rerank_int8_dir, texts)
    assert other["max_abs_score_diff"] > 0.0 and other["mean_cosine"] < 1.0


def test_bad_input_is_named(fp32):
    with pytest.raises(TypeError, match=r"query is NoneType"):
        fp32.rank(None, DOCS)
    with pytest.raises(TypeError, match=r"documents\[1\] is int"):
        fp32.rank(QUERY, ["a", 3])
    with pytest.raises(TypeError, match="documents is a str"):
        fp32.rank(QUERY, "one document")
    with pytest.raises(ValueError, match="top_n"):
        fp32.rank(QUERY, DOCS, top_n=0)
    with pytest.raises(TypeError, match=r"pairs\[1\]\[1\] \(document\) is NoneType"):
        fp32.rerank_pairs([("q", "d"), ("q", None)])
    with pytest.raises(TypeError, match=r"pairs\[0\] is str, not a \(query, document\) pair"):
        fp32.rerank_pairs("q")
    with pytest.raises(TypeError, match=r"pairs\[2\] is tuple"):
        check_pairs([("a", "b"), ["c", "d"], ("e",)])


def test_kind_and_registry(models_dir):
    with pytest.raises(ValueError, match="dense model, not rerank"):
        TextCrossEncoder(DEFAULT_MODEL, models_dir=models_dir)
    hf = get_model(DEFAULT_RERANK_MODEL)
    assert hf.kind == "rerank" and hf.sources[0].type == "hf"
    assert hf.sources[0].ref == "cross-encoder/ms-marco-MiniLM-L-6-v2"
    assert DEFAULT_RERANK_MODEL in [m["model"] for m in TextCrossEncoder.list_supported_models()]


@pytest.mark.bakes
def test_int8_bake_is_batch_invariant_and_gated_on_retrieval(int8):
    fidelity = int8.manifest.fidelity
    assert int8.manifest.quantization["method"] == "rowwise"
    assert fidelity["batch_invariance_min_cosine"] >= 0.9999
    assert {"ndcg_ratio", "ndcg10_reference", "ndcg10_candidate"} <= set(fidelity)
    pairs = [(QUERY, d) for d in DOCS]
    alone = [int8.rerank_pairs([p], batch_size=1)[0] for p in pairs]
    np.testing.assert_allclose(alone, int8.rerank_pairs(pairs), atol=1e-5)


@pytest.mark.bakes
def test_auto_bake_falls_back_to_fp32_with_the_search(cross_encoder_name, tmp_path, caplog):
    """--quantize auto: no scheme passes an impossible gate, so the bake is fp32, says why and
    records every scheme it tried."""
    with caplog.at_level("WARNING", logger="models_bake"):
        result = bake(
            cross_encoder_name,
            out=tmp_path,
            quantize="auto",
            cache=REPO / ".cache",
            gates={"batch_invariance_min_cosine": 1.01},
        )
    q = result.manifest.quantization
    assert q["weight_type"] == "float32" and result.manifest.fidelity is None
    schemes = [s["scheme"] for s in q["auto_search"]]
    assert schemes == ["int8", "int8-mixed", "int8-mixed", "int8-blockwise"]
    kept = [len(s.get("keep_fp32", ())) for s in q["auto_search"]]
    assert kept[0] == kept[3] == 0 and 1 <= kept[1] < kept[2]  # the predicted n, then doubled
    # one ranking pass: every quantized MatMul's own error, worst first
    errors = [e["error"] for e in q["auto_search"][1]["sensitivity"]]
    assert errors == sorted(errors, reverse=True) and errors[0] > 0
    assert all(not s["passed"] and s["failed"] for s in q["auto_search"])
    assert "no int8 scheme passes the gate, baking fp32" in caplog.text
    assert "batch_invariance_min_cosine" in caplog.text


def test_truncation_direction_left_cuts_the_documents_start(fp32):
    words = [f"w{i % 10}" if i % 2 else "kettle" for i in range(400)]
    long_doc = " ".join(words)
    [right] = fp32.encode_pairs([(QUERY, long_doc)])
    [left] = fp32.encode_pairs([(QUERY, long_doc)], truncation_direction="left")
    assert len(left.ids) == len(right.ids) == MAX_LENGTH
    assert left.type_ids == right.type_ids  # the query is whole either way
    doc = fp32.tokenizer.untruncated.encode(long_doc, add_special_tokens=False).ids
    kept = right.type_ids.count(1) - 1  # the document's tokens, less its [SEP]
    assert right.ids[-kept - 1 : -1] == doc[:kept]
    assert left.ids[-kept - 1 : -1] == doc[-kept:]
    scores = fp32.rerank_pairs([(QUERY, long_doc)], truncation_direction="left")
    ranked = fp32.rank(QUERY, [long_doc], truncation_direction="left")
    assert ranked[0].score == scores[0] != fp32.rerank_pairs([(QUERY, long_doc)])[0]
    short = [(QUERY, d) for d in DOCS]
    assert fp32.rerank_pairs(short, truncation_direction="left") == fp32.rerank_pairs(short)


def test_rank_with_usage_counts_each_pair_from_its_encoding(fp32):
    docs = ["a kettle boils water", "word " * 300, "tea"]
    ranked = fp32.rank_with_usage("how to boil water", docs, top_n=2)
    assert [r.index for r in ranked.results] == [
        r.index for r in fp32.rank("how to boil water", docs, top_n=2)
    ]
    encodings = fp32.encode_pairs([("how to boil water", d) for d in docs])
    assert ranked.token_counts == [sum(e.attention_mask) for e in encodings]
    assert ranked.token_counts[1] == fp32.max_length  # the long one as read: cut


def test_truncate_false_names_the_pair_and_its_whole_length(fp32):
    from kettle.errors import TextTooLongError

    pair = ("q", "word " * 300)
    with pytest.raises(TextTooLongError) as err:
        fp32.rerank_pairs_with_usage([("q", "tea"), pair], truncate=False)
    untruncated = fp32.tokenizer.tokenizer  # the model's tokenizer, truncation off below
    from tokenizers import Tokenizer

    whole = Tokenizer.from_str(untruncated.to_str())
    whole.no_truncation()
    assert err.value.index == 1 and err.value.tokens == len(whole.encode(*pair).ids)
    assert err.value.limit == fp32.max_length


def test_an_xlm_roberta_pair_is_measured_by_its_own_template(tmp_path):
    """XLM-R joins a pair as <s> a </s></s> b </s>: one token more than the two texts' own counts,
    where BERT's [CLS] a [SEP] b [SEP] is one fewer. The length check is the model's, not BERT's."""
    from models_bake.__main__ import main as bake_cli
    from tests.conftest import FIXTURES

    folder = FIXTURES / "xlm-roberta-reranker-tiny"
    assert (
        bake_cli(
            [
                "acme/xlmr",
                "--source",
                str(folder),
                "--out",
                str(tmp_path),
                "--quantize",
                "none",
                "-q",
            ]
        )
        == 0
    )
    model = TextCrossEncoder("acme/xlmr", models_dir=tmp_path)
    query = "q"
    a = model.token_counts([query])[0]
    words = 1
    while a + model.token_counts(["w " * (words + 1)])[0] - 1 <= model.max_length:
        words += 1  # the longest document BERT's formula lets through
    doc = "w " * words
    b = model.token_counts([doc])[0]
    assert a + b - 1 <= model.max_length < a + b + 1  # BERT's count fits, XLM-R's pair does not
    from kettle.errors import TextTooLongError

    with pytest.raises(TextTooLongError):
        model.rank_with_usage(query, [doc], truncate=False)
    ranked = model.rank_with_usage(query, [doc])  # cut to fit
    assert ranked.token_counts == [model.max_length]
