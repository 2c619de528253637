"""Dense text embeddings: one float32 vector per text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np

from kettle.batching import DEFAULT_BATCH_SIZE
from kettle.encoder import (
    Embedded,
    TextEmbeddingBase,
    TextKind,
    TruncationDirection,
    direction_of,
)
from kettle.output import OutputCalibration, OutputSpec, Precision, output_spec
from kettle.pooling import normalize as unit
from kettle.pooling import pool
from kettle.registry import DEFAULT_MODEL, register_custom


class TextEmbedding(TextEmbeddingBase):
    """Dense embeddings from a baked model.

    >>> model = TextEmbedding()  # sentence-transformers/all-MiniLM-L6-v2, baked under ./models
    >>> vectors = list(model.embed(["hello", "world"]))
    """

    kind = "dense"
    default_model = DEFAULT_MODEL

    @property
    def embedding_size(self) -> int:
        return self.manifest.dim

    @classmethod
    def add_custom_model(
        cls,
        model: str,
        pooling: Any = None,
        normalization: bool | None = None,
        sources: Any = None,
        dim: int | None = None,
        model_file: str = "onnx/model.onnx",
        description: str = "",
        license: str = "",
        size_in_gb: float = 0.0,
        additional_files: list[str] | None = None,
        output_name: str | None = None,
        *,
        max_length: int | None = None,
    ) -> None:
        """FastEmbed's ``add_custom_model``: describe a model kettle's registry lacks.

        kettle never downloads at run time, so this registers the description and the model
        must then be **baked** before ``TextEmbedding(model)`` loads it: in this process with
        ``models_bake.bake.bake(model, out="models")``, or from the shell with the command the
        error of an unbaked model prints (``python -m models_bake MODEL --source REPO_OR_DIR
        --kind dense --pooling ... --out models``). ``sources``: FastEmbed's ``ModelSource(hf=...)``,
        ``{"hf": ...}``, a Hugging Face repo id or a local folder (a ``url`` archive is refused:
        unpack it and pass the folder). An hf source bakes its ``model_file`` ONNX as it is; a
        folder of safetensors is converted, a folder holding only an ONNX export (model.onnx,
        tokenizer files, config.json) is quantized and gated against that file.
        ``pooling``: FastEmbed's PoolingType or "mean", "cls", "last"; ``max_length=`` is
        kettle's own. A local sentence-transformers folder's files fill in what is left out (or
        None): pooling, normalization, dim, max_length (its max_seq_length, as
        sentence-transformers truncates) and named prompts; an explicit argument wins. Once
        baked, the manifest carries the description: later processes need not call this again.
        """
        if sources is None:
            raise TypeError("add_custom_model() needs sources= (a folder, repo id or ModelSource)")
        register_custom(
            "dense",
            model,
            sources,
            dim=dim,
            pooling=pooling,
            normalize=normalization,
            model_file=model_file,
            description=description,
            license=license,
            size_in_gb=size_in_gb,
            max_length=max_length,
            extra={"output_name": output_name} if output_name else None,
        )

    @property
    def query_prefix(self) -> str:
        return self.manifest.query_prefix

    @property
    def passage_prefix(self) -> str:
        return self.manifest.passage_prefix

    @property
    def calibration(self) -> OutputCalibration | None:
        """The bake's per-dimension output ranges for int8/uint8 (None: baked without them)."""
        record = self.manifest.calibration
        if record is None:
            return None
        if self._calibration is None:
            self._calibration = OutputCalibration.from_json(record)
        return self._calibration

    _calibration: OutputCalibration | None = None

    def _last_step(
        self,
        hidden: np.ndarray,
        mask: np.ndarray,
        normalize: bool | None = None,
        output: OutputSpec | None = None,
    ) -> np.ndarray:
        vectors = pool(self.manifest.pooling, hidden, mask).astype(np.float32, copy=False)
        if normalize is None:
            normalize = self.manifest.normalize
        vectors = unit(vectors).astype(np.float32, copy=False) if normalize else vectors
        return vectors if output is None else output.apply(vectors)

    def _output_step(
        self,
        normalize: bool | None,
        dimensions: int | None,
        precision: str,
        ranges: Any = None,
        calibration_embeddings: Any = None,
        renormalize: bool | None = None,
    ) -> partial:
        """The last step with the output options checked (before any text runs)."""
        unit_output = self.manifest.normalize if normalize is None else normalize
        spec = None
        if dimensions is not None or precision != "float32":
            spec = output_spec(
                dim=self.embedding_size,
                name=self.model_name,
                normalize=unit_output,
                dimensions=dimensions,
                precision=precision,
                calibration=self.calibration,
                ranges=ranges,
                calibration_embeddings=calibration_embeddings,
                renormalize=renormalize,
            )
        return partial(self._last_step, normalize=normalize, output=spec)

    def embed(
        self,
        documents: str | Iterable[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        parallel: int | None = None,
        *,
        normalize: bool | None = None,
        truncate: bool = True,
        prompt_name: str | None = None,
        kind: TextKind | None = None,
        truncation_direction: TruncationDirection = "right",
        dimensions: int | None = None,
        precision: Precision = "float32",
        ranges: Any = None,
        calibration_embeddings: Any = None,
    ) -> Iterator[np.ndarray]:
        """Vectors in input order, from any iterable, in bounded memory.

        ``parallel`` (FastEmbed's): that many worker processes (0: one per CPU), same vectors.

        ``normalize``: unit vectors (True), raw pooled ones (False), or as the model is baked
        (None). ``truncate=False``: a text past max_length raises TextTooLongError instead of
        being cut (texts are checked one window of 2,048 at a time, before that window runs).
        ``prompt_name``: prepend one of the model's named prompts (sentence-transformers'
        ``prompt_name``, e.g. "query"); an unknown name is a ValueError listing the known ones.
        ``kind``: "query" or "passage" applies the model's prefix.
        ``truncation_direction="left"`` (TEI's): a text past max_length keeps its end instead of
        its start; the prefix or prompt stays whole either way.

        ``dimensions``: keep the first N (Matryoshka), unit length again when the output is unit
        vectors (OpenAI's ``dimensions``). ``precision``: "float32", or sentence-transformers'
        "int8", "uint8" (against the bake's per-dimension ranges, or ``ranges`` /
        ``calibration_embeddings`` as its quantize_embeddings takes them), "binary", "ubinary"
        (bits packed into int8 / uint8 bytes): kettle.output. A keyword kettle does not
        implement (``normalize_embeddings``, ``truncate_dim``: see ``encode``) is a TypeError.
        """
        step = self._output_step(normalize, dimensions, precision, ranges, calibration_embeddings)
        return self._stream(
            documents,
            batch_size,
            step,
            truncate=truncate,
            kind=kind,
            parallel=parallel,
            truncation_direction=truncation_direction,
            prompt=self._prompt_text(prompt_name),
        )

    def embed_with_usage(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind | None = None,
        normalize: bool | None = None,
        truncate: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prompt_name: str | None = None,
        truncation_direction: TruncationDirection = "right",
        dimensions: int | None = None,
        precision: Precision = "float32",
        ranges: Any = None,
        calibration_embeddings: Any = None,
    ) -> Embedded[np.ndarray]:
        """Vectors ``[n, dim]`` and tokens per text, from one tokenization.

        ``kind`` applies the model's query or passage prefix, ``prompt_name`` one of its named
        prompts (as ``embed``; the counts include the prompt's tokens, as the model sees them),
        ``truncation_direction`` which end of a long text is cut, ``dimensions`` and
        ``precision`` the output (as ``embed``). Every text is checked (and, with
        ``truncate=False``, measured) before any is embedded.
        """
        step = self._output_step(normalize, dimensions, precision, ranges, calibration_embeddings)
        vectors, counts = self._usage(
            texts,
            batch_size,
            step,
            kind=kind,
            truncate=truncate,
            truncation_direction=truncation_direction,
            prompt=self._prompt_text(prompt_name),
        )
        return Embedded(np.stack(vectors) if vectors else self._empty(step), counts)

    def embed_token_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        normalize: bool | None = None,
        truncate: bool = True,
        truncation_direction: TruncationDirection = "right",
        batch_size: int = DEFAULT_BATCH_SIZE,
        dimensions: int | None = None,
        precision: Precision = "float32",
        ranges: Any = None,
        calibration_embeddings: Any = None,
    ) -> Embedded[np.ndarray]:
        """Vectors and token counts for texts given as token ids of **this model's** tokenizer
        (one list per text, without special tokens: ``model.tokenizer.untruncated.encode(text,
        add_special_tokens=False).ids``), as OpenAI's API takes ``input``. The ids are read as
        they are, not decoded: the special tokens are added and the ids cut to max_length as a
        text's are, so a text's ids give that text's vector exactly (decoding and tokenizing
        again need not give the same ids back). Ids of another tokenizer (tiktoken's, which
        LangChain's OpenAIEmbeddings sends by default) mean other tokens here: send text.
        A list that is empty or holds an id outside the vocabulary is an InvalidTextError
        naming it (``ids[2][5]``); ``truncate=False`` refuses a list past max_length.
        ``dimensions`` and ``precision`` as ``embed``."""
        step = self._output_step(normalize, dimensions, precision, ranges, calibration_embeddings)
        vectors, counts = self._id_usage(
            ids,
            batch_size,
            step,
            truncate=truncate,
            truncation_direction=direction_of(truncation_direction),
        )
        return Embedded(np.stack(vectors) if vectors else self._empty(step), counts)

    # ------------------------------------------------------------------ sentence-transformers
    similarity_fn_name = "cosine"

    def encode(
        self,
        sentences: str | Iterable[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "sentence_embedding",
        precision: Precision = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        *,
        ranges: Any = None,
        calibration_embeddings: Any = None,
    ) -> np.ndarray | list[np.ndarray]:
        """sentence-transformers' ``encode``: an ndarray ``[n, dim]`` (one vector for a str).

        ``normalize_embeddings=False`` returns the model's output as baked (a model with a
        Normalize module, as all-MiniLM-L6-v2, gives unit vectors either way, as in
        sentence-transformers); True makes every vector unit length. ``truncate_dim`` keeps the
        first N, normalised again only with ``normalize_embeddings`` (sentence-transformers'
        order). ``precision`` quantizes as ``embed`` does, against the bake's ranges: the same
        text gets the same codes whatever else is encoded with it. ``prompt`` (a text) wins over
        ``prompt_name``. ``output_value="token_embeddings"``: each text's token vectors.
        ``convert_to_numpy=False``: a list of 1-D arrays. Refused with a TypeError: torch
        tensors (``convert_to_tensor``) and ``device`` (pick providers when constructing).
        ``show_progress_bar=True`` needs tqdm.
        """
        if convert_to_tensor:
            raise TypeError(
                "encode() got convert_to_tensor=True: kettle returns numpy arrays, never torch "
                "tensors (torch.from_numpy turns one into a tensor)"
            )
        if device not in (None, "cpu"):
            raise TypeError(
                f"encode() got device={device!r}: kettle picks its device when the model is "
                "constructed (providers=, cuda=)"
            )
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        prompt_text = prompt if prompt is not None else self._prompt_text(prompt_name)
        if output_value == "token_embeddings":
            if precision != "float32" or truncate_dim is not None or normalize_embeddings:
                raise ValueError(
                    "output_value='token_embeddings' takes no precision, truncate_dim or "
                    "normalize_embeddings"
                )
            texts = _progress(texts, show_progress_bar)
            rows = list(self._stream(texts, batch_size, self._token_step, prompt=prompt_text))
            return rows[0] if single else rows
        if output_value != "sentence_embedding":
            raise ValueError(
                f"output_value must be 'sentence_embedding' or 'token_embeddings', not {output_value!r}"
            )
        step = self._output_step(
            True if normalize_embeddings else None,
            truncate_dim,
            precision,
            ranges,
            calibration_embeddings,
            renormalize=normalize_embeddings,
        )
        texts = _progress(texts, show_progress_bar)
        rows = list(self._stream(texts, batch_size, step, prompt=prompt_text))
        if single:
            return rows[0]
        if not convert_to_numpy:
            return rows
        return np.stack(rows) if rows else self._empty(step)

    def _empty(self, step: partial) -> np.ndarray:
        """No texts: the empty matrix of the output's width and type."""
        empty = np.zeros((0, self.embedding_size), dtype=np.float32)
        output = step.keywords["output"]
        return empty if output is None else output.apply(empty)

    def encode_query(
        self, sentences: str | Iterable[str], **kwargs: Any
    ) -> np.ndarray | list[np.ndarray]:
        """``encode`` with the model's "query" prompt (sentence-transformers'), else its query
        prefix; an explicit ``prompt`` or ``prompt_name`` wins."""
        return self._encode_as(sentences, ("query",), self.query_prefix, kwargs)

    def encode_document(
        self, sentences: str | Iterable[str], **kwargs: Any
    ) -> np.ndarray | list[np.ndarray]:
        """``encode`` with the model's "document", "passage" or "corpus" prompt (the first it
        has, as sentence-transformers), else its passage prefix."""
        names = ("document", "passage", "corpus")
        return self._encode_as(sentences, names, self.passage_prefix, kwargs)

    def _encode_as(
        self, sentences: Any, names: tuple[str, ...], prefix: str, kwargs: dict[str, Any]
    ) -> np.ndarray | list[np.ndarray]:
        if kwargs.get("prompt") is None and kwargs.get("prompt_name") is None:
            named = next((n for n in names if n in self.manifest.prompts), None)
            if named is not None:
                kwargs["prompt_name"] = named
            elif prefix:
                kwargs["prompt"] = prefix
        return self.encode(sentences, **kwargs)

    @staticmethod
    def similarity(embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """sentence-transformers' ``similarity`` (cosine): ``[len(a), len(b)]`` float32; a 1-D
        argument is one vector. Quantized codes are compared as numbers."""
        a = np.atleast_2d(np.asarray(embeddings1, dtype=np.float32))
        b = np.atleast_2d(np.asarray(embeddings2, dtype=np.float32))
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"vectors of {a.shape[1]} and {b.shape[1]} dimensions")
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return (a @ b.T).astype(np.float32)

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' name for ``embedding_size``."""
        return self.embedding_size

    def _token_step(self, hidden: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        """Each text's rows of the hidden states, padding dropped: no pooling, no normalising."""
        if hidden.ndim != 3:
            raise ValueError(
                f"{self.model_name} has no token-level output: its graph pools inside it "
                f"(output shape {list(hidden.shape)})"
            )
        keep = np.asarray(mask).astype(bool)
        return [hidden[i, keep[i]].astype(np.float32, copy=False) for i in range(len(hidden))]

    def embed_tokens(
        self,
        documents: str | Iterable[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        parallel: int | None = None,
        *,
        truncate: bool = True,
        prompt_name: str | None = None,
        kind: TextKind | None = None,
        truncation_direction: TruncationDirection = "right",
    ) -> Iterator[np.ndarray]:
        """The model's last hidden states per text, ``[tokens, hidden]`` float32, special tokens
        included, before pooling and normalisation (sentence-transformers'
        ``output_value="token_embeddings"``, TEI's ``/embed_all``), in input order. A model
        whose graph pools inside it (CLIP's text tower) has none: ValueError."""
        return self._stream(
            documents,
            batch_size,
            self._token_step,
            truncate=truncate,
            kind=kind,
            parallel=parallel,
            truncation_direction=truncation_direction,
            prompt=self._prompt_text(prompt_name),
        )

    def embed_tokens_with_usage(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind | None = None,
        truncate: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prompt_name: str | None = None,
        truncation_direction: TruncationDirection = "right",
    ) -> Embedded[list[np.ndarray]]:
        """``embed_tokens`` for a list, with the tokens per text (the rows of each matrix)."""
        matrices, counts = self._usage(
            texts,
            batch_size,
            self._token_step,
            kind=kind,
            truncate=truncate,
            truncation_direction=truncation_direction,
            prompt=self._prompt_text(prompt_name),
        )
        return Embedded(matrices, counts)

    @property
    def prompts(self) -> dict[str, str]:
        """sentence-transformers' named prompts of this model (name -> prefix)."""
        return dict(self.manifest.prompts)

    def _prompt_text(self, name: str | None) -> str:
        return "" if name is None else self.prompt(name)

    def prompt(self, name: str) -> str:
        """The text of the named prompt ``name``."""
        prompts = self.manifest.prompts
        if name not in prompts:
            known = ", ".join(sorted(prompts)) or "none"
            raise ValueError(
                f"prompt_name: {self.model_name} has no prompt {name!r}; known: {known}"
            )
        return prompts[name]


def _progress(texts: list[str], show: bool | None) -> Iterable[str]:
    """``texts``, behind a tqdm bar when ``show`` (tqdm is optional: asked for, it must be there)."""
    if not show:
        return texts
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise TypeError("show_progress_bar=True needs tqdm (pip install tqdm)") from None
    return tqdm(texts, desc="Batches", unit="text")
