"""Dense text embeddings: one float32 vector per text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np

from kettle.batching import DEFAULT_BATCH_SIZE
from kettle.encoder import Embedded, TextEncoder, TextKind, TruncationDirection, direction_of
from kettle.pooling import normalize as unit
from kettle.pooling import pool
from kettle.registry import DEFAULT_MODEL, register_custom


class TextEmbedding(TextEncoder):
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
        pooling: Any,
        normalization: bool,
        sources: Any,
        dim: int,
        model_file: str = "onnx/model.onnx",
        description: str = "",
        license: str = "",
        size_in_gb: float = 0.0,
        additional_files: list[str] | None = None,
        output_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        """FastEmbed's ``add_custom_model``: describe a model kettle's registry lacks.

        kettle never downloads at run time, so this registers the description and the model
        must then be **baked** before ``TextEmbedding(model)`` loads it: in this process with
        ``models_bake.bake.bake(model, out="models")``, or from the shell with the command the
        error of an unbaked model prints (``python -m models_bake MODEL --source REPO_OR_DIR
        --kind dense --pooling ... --out models``). ``sources``: FastEmbed's ``ModelSource(hf=...)``,
        ``{"hf": ...}``, a Hugging Face repo id or a local folder (a ``url`` archive is refused:
        unpack it and pass the folder). An hf source bakes its ``model_file`` ONNX as it is; a
        folder of safetensors is converted. ``pooling``: FastEmbed's PoolingType or "mean", "cls",
        "last"; ``max_length=`` (default 512) is kettle's own. Once baked, the manifest carries
        the description: later processes need not call this again.
        """
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
            max_length=int(kwargs.pop("max_length", 512)),
            extra={"output_name": output_name} if output_name else None,
        )

    @property
    def query_prefix(self) -> str:
        return self.manifest.query_prefix

    @property
    def passage_prefix(self) -> str:
        return self.manifest.passage_prefix

    def _last_step(
        self, hidden: np.ndarray, mask: np.ndarray, normalize: bool | None = None
    ) -> np.ndarray:
        vectors = pool(self.manifest.pooling, hidden, mask).astype(np.float32, copy=False)
        if normalize is None:
            normalize = self.manifest.normalize
        return unit(vectors).astype(np.float32, copy=False) if normalize else vectors

    def embed(
        self,
        documents: str | Iterable[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        parallel: int | None = None,
        *,
        normalize: bool | None = None,
        truncate: bool = True,
        prompt_name: str | None = None,
        truncation_direction: TruncationDirection = "right",
        **kwargs: Any,
    ) -> Iterator[np.ndarray]:
        """float32 vectors in input order, from any iterable, in bounded memory.

        ``parallel`` (FastEmbed's): that many worker processes (0: one per CPU), same vectors.

        ``normalize``: unit vectors (True), raw pooled ones (False), or as the model is baked
        (None). ``truncate=False``: a text past max_length raises TextTooLongError instead of
        being cut (texts are checked one window of 2,048 at a time, before that window runs).
        ``prompt_name``: prepend one of the model's named prompts (sentence-transformers'
        ``prompt_name``, e.g. "query"); an unknown name is a ValueError listing the known ones.
        ``truncation_direction="left"`` (TEI's): a text past max_length keeps its end instead of
        its start; the prefix or prompt stays whole either way.
        """
        return self._stream(
            documents,
            batch_size,
            partial(self._last_step, normalize=normalize),
            truncate=truncate,
            kind=kwargs.pop("kind", None),
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
    ) -> Embedded[np.ndarray]:
        """Vectors ``[n, dim]`` float32 and tokens per text, from one tokenization.

        ``kind`` applies the model's query or passage prefix, ``prompt_name`` one of its named
        prompts (as ``embed``; the counts include the prompt's tokens, as the model sees them),
        ``truncation_direction`` which end of a long text is cut (as ``embed``).
        Every text is checked (and, with ``truncate=False``, measured) before any is embedded.
        """
        vectors, counts = self._usage(
            texts,
            batch_size,
            partial(self._last_step, normalize=normalize),
            kind=kind,
            truncate=truncate,
            truncation_direction=truncation_direction,
            prompt=self._prompt_text(prompt_name),
        )
        dim = self.embedding_size
        matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        return Embedded(matrix.astype(np.float32, copy=False), counts)

    def embed_token_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        normalize: bool | None = None,
        truncate: bool = True,
        truncation_direction: TruncationDirection = "right",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Embedded[np.ndarray]:
        """Vectors and token counts for texts given as token ids of **this model's** tokenizer
        (one list per text, without special tokens: ``model.tokenizer.untruncated.encode(text,
        add_special_tokens=False).ids``), as OpenAI's API takes ``input``. The ids are read as
        they are, not decoded: the special tokens are added and the ids cut to max_length as a
        text's are, so a text's ids give that text's vector exactly (decoding and tokenizing
        again need not give the same ids back). Ids of another tokenizer (tiktoken's, which
        LangChain's OpenAIEmbeddings sends by default) mean other tokens here: send text.
        A list that is empty or holds an id outside the vocabulary is an InvalidTextError
        naming it (``ids[2][5]``); ``truncate=False`` refuses a list past max_length."""
        vectors, counts = self._id_usage(
            ids,
            batch_size,
            partial(self._last_step, normalize=normalize),
            truncate=truncate,
            truncation_direction=direction_of(truncation_direction),
        )
        dim = self.embedding_size
        matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        return Embedded(matrix.astype(np.float32, copy=False), counts)

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

    def query_embed(
        self, query: str | Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, **kwargs: Any
    ) -> Iterator[np.ndarray]:
        """Embed search queries (the model's query prefix applied)."""
        return self.embed(query, batch_size, kwargs.pop("parallel", None), kind="query", **kwargs)

    def passage_embed(
        self, texts: str | Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, **kwargs: Any
    ) -> Iterator[np.ndarray]:
        """Embed documents to be searched (the model's passage prefix applied)."""
        parallel = kwargs.pop("parallel", None)
        return self.embed(texts, batch_size, parallel, kind="passage", **kwargs)
