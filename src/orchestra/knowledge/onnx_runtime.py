"""all-MiniLM-L6-v2 through ONNX Runtime: the same weights, a faster forward pass.

No exported graph ships with the model package, and exporting one needs torch, so the
graph is written here, node by node, from the same safetensors weights the numpy runtime
reads (:mod:`orchestra.knowledge.minilm`), with the same maths: BERT embeddings, six
encoder layers (exact erf GELU), then the last hidden state. Pooling and normalisation stay
in numpy, shared with the numpy runtime.

The graph uses ONNX Runtime's fused CPU operators (``com.microsoft``): one
``EmbedLayerNormalization``, and per layer one query/key/value projection feeding
``MultiHeadAttention``, ``SkipLayerNormalization`` (residual, bias and layer norm in one
pass) and ``BiasGelu`` (exact erf). It has no attention mask: the encoder batches only
texts of the same token count (no padding), which also lets ONNX Runtime use its
flash-attention kernel.

``int8=True`` quantises every weight matrix to int8 (ONNX Runtime's dynamic quantisation:
weights per output channel, activations per batch at run time). The feed-forward output
projection reads the GELU output, in which a few channels per layer are 5-15x larger than
the rest; one per-batch activation scale then leaves too few levels for the others (code
vectors fell to cosine 0.987 of the reference). Those channels, found once at build time
on :data:`CALIBRATION` texts, go through a small float32 branch; everything else is int8.
Vectors are checked against the numpy reference in the tests (sentences >= 0.985, code
>= 0.99).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]
_MS = "com.microsoft"

OUTLIER_CHANNELS = 4
"""Feed-forward channels per layer kept float32 in the int8 model (the largest on
:data:`CALIBRATION`; measured: the largest is 24 where the median channel peaks at 1.5)."""

CALIBRATION = (
    "Hello world",
    "We decided to keep refunds in their own service so payments stay small.",
    "Convention: every error carries a hint that says how to fix it.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.",
    "How do I count the items an iterator yields without storing them?",
    "def total(items: list[float], tax: float = 0.2) -> float:\n"
    '    """The sum of the items with tax added."""\n'
    "    return sum(items) * (1 + tax)\n",
    "class Cart:\n    def __init__(self) -> None:\n        self.lines: dict[str, int] = {}\n\n"
    "    def add(self, sku: str, qty: int = 1) -> None:\n"
    "        self.lines[sku] = self.lines.get(sku, 0) + qty\n",
    "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '7 days' ORDER BY name;",
    "## Install\n\nRun `pip install orchestra` and then `orchestra kb ingest .` to index the "
    "repository; the first run builds the model graph once.",
    "for (let i = 0; i < rows.length; i++) { if (!rows[i].ok) throw new Error(rows[i].msg); }",
)
"""Texts the int8 build runs through the float graph to find the outlier channels."""


class _Builder:
    """Collects the nodes and initialisers of one graph."""

    def __init__(self, weights: dict[str, Matrix]) -> None:
        self.weights = weights
        self.inits: list[Any] = []
        self.nodes: list[Any] = []

    def const(self, name: str, value: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        # Initialisers live in their own namespace ("const/…"), apart from node outputs.
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), "const/" + name))
        return "const/" + name

    def w(self, name: str) -> Matrix:
        return np.asarray(self.weights[name], dtype=np.float32)

    def node(self, op: str, inputs: list[str], name: str, outputs: int = 1, **attrs: Any) -> str:
        from onnx import helper

        outs = [name] + [f"{name}:{i}" for i in range(1, outputs)]
        domain = attrs.pop("domain", None)
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, domain=domain, **attrs))
        return name

    def skip_norm(self, x: str, skip: str, prefix: str, bias: str, eps: float) -> str:
        """``LayerNorm(x + bias + skip)`` in one fused node."""
        return self.node(
            "SkipLayerNormalization",
            [
                x,
                skip,
                self.const(prefix + ".weight", self.w(prefix + ".weight")),
                self.const(prefix + ".bias", self.w(prefix + ".bias")),
                self.const(bias, self.w(bias)),
            ],
            prefix,
            domain=_MS,
            epsilon=eps,
        )

    def feed_forward(self, x: str, p: str, outliers: npt.NDArray[np.int64] | None) -> str:
        """GELU(x W1 + b1) W2 (bias b2 left to the following layer norm); with
        ``outliers``, those inner channels in a separate float32 branch."""
        w1 = self.w(p + "intermediate.dense.weight").T
        b1 = self.w(p + "intermediate.dense.bias")
        w2 = self.w(p + "output.dense.weight").T
        groups = [("", np.arange(w1.shape[1]))]
        if outliers is not None and outliers.size:
            groups = [("", np.setdiff1d(groups[0][1], outliers)), (".outliers", outliers)]
        outs = []
        for suffix, idx in groups:
            inner = self.node(
                "MatMul", [x, self.const(p + f"ffn.in{suffix}", w1[:, idx])], p + f"ffn.in{suffix}"
            )
            gelu = self.node(
                "BiasGelu",
                [inner, self.const(p + f"ffn.in.bias{suffix}", b1[idx])],
                p + f"gelu{suffix}",
                domain=_MS,
            )
            outs.append(
                self.node(
                    "MatMul",
                    [gelu, self.const(p + f"ffn.out{suffix}", w2[idx])],
                    p + f"ffn.out{suffix}",
                )
            )
        return outs[0] if len(outs) == 1 else self.node("Add", outs, p + "ffn.sum")


def _graph(
    weights: dict[str, Matrix],
    config: dict[str, Any],
    outliers: Sequence[npt.NDArray[np.int64]] | None = None,
    *,
    taps: bool = False,
) -> Any:
    """The encoder as an ONNX ``ModelProto`` (opset 17 + com.microsoft), input ``input_ids``
    (int32, no padding). ``taps`` adds each layer's GELU output as a graph output."""
    from onnx import TensorProto, helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    eps = float(config["layer_norm_eps"])
    b = _Builder(weights)
    e = "embeddings."
    # The token type is always 0: its embedding is folded into the position table.
    positions = b.w(e + "position_embeddings.weight") + b.w(e + "token_type_embeddings.weight")[0]
    x = b.node(
        "EmbedLayerNormalization",
        [
            "input_ids",
            "",
            b.const("word", b.w(e + "word_embeddings.weight")),
            b.const("position", positions),
            "",
            b.const("embed.norm.weight", b.w(e + "LayerNorm.weight")),
            b.const("embed.norm.bias", b.w(e + "LayerNorm.bias")),
        ],
        "embed",
        outputs=2,
        domain=_MS,
        epsilon=eps,
    )
    splits = b.const("qkv.splits", np.array([hidden] * 3, dtype=np.int64))
    tapped = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        names = ("query", "key", "value")
        qkv_w = np.concatenate([b.w(f"{p}attention.self.{n}.weight").T for n in names], axis=1)
        qkv_b = np.concatenate([b.w(f"{p}attention.self.{n}.bias") for n in names])
        qkv = b.node("MatMul", [x, b.const(p + "qkv", qkv_w)], p + "qkv")
        qkv = b.node("Add", [qkv, b.const(p + "qkv.bias", qkv_b)], p + "qkv.add")
        b.node("Split", [qkv, splits], p + "qkv.split", outputs=3, axis=-1)
        s = p + "qkv.split"
        context = b.node(
            "MultiHeadAttention", [s, s + ":1", s + ":2"], p + "mha", domain=_MS, num_heads=heads
        )
        attn = b.node(
            "MatMul",
            [context, b.const(p + "attn.out", b.w(p + "attention.output.dense.weight").T)],
            p + "attn.out",
        )
        x = b.skip_norm(
            attn, x, p + "attention.output.LayerNorm", p + "attention.output.dense.bias", eps
        )
        ffn = b.feed_forward(x, p, outliers[i] if outliers is not None else None)
        if taps:
            tapped.append(p + "gelu")
        x = b.skip_norm(ffn, x, p + "output.LayerNorm", p + "output.dense.bias", eps)
    b.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    outputs = [
        helper.make_tensor_value_info(
            "last_hidden_state", TensorProto.FLOAT, ["batch", "length", hidden]
        )
    ] + [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in tapped]
    graph = helper.make_graph(
        b.nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "length"])],
        outputs,
        b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(_MS, 1)]
    )
    model.ir_version = 8
    return model


def _session(graph: bytes, threads: int | None) -> Any:
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


def outlier_channels(
    weights: dict[str, Matrix], config: dict[str, Any], calibration: Sequence[Sequence[int]]
) -> list[npt.NDArray[np.int64]]:
    """Per layer, the :data:`OUTLIER_CHANNELS` GELU channels of largest magnitude over
    the ``calibration`` token ids (run through the float32 graph, one text at a time)."""
    session = _session(_graph(weights, config, taps=True).SerializeToString(), threads=1)
    layers = int(config["num_hidden_layers"])
    peak = np.zeros((layers, int(config["intermediate_size"])), dtype=np.float32)
    for ids in calibration:
        outs = session.run(None, {"input_ids": np.asarray([ids], dtype=np.int32)})[1:]
        for i, out in enumerate(outs):
            peak[i] = np.maximum(peak[i], np.abs(out).reshape(-1, peak.shape[1]).max(axis=0))
    return [np.sort(np.argsort(row)[-OUTLIER_CHANNELS:]).astype(np.int64) for row in peak]


def build_graph(
    weights: dict[str, Matrix],
    config: dict[str, Any],
    *,
    int8: bool,
    tokenize: Callable[[str], Sequence[int]] | None = None,
) -> bytes:
    """The serialised encoder graph; with ``int8``, its weights quantised (seconds of work,
    which :mod:`orchestra.knowledge.model_cache` keeps on disk). ``tokenize`` turns the
    :data:`CALIBRATION` texts into token ids (needed with ``int8``)."""
    if not int8:
        data: bytes = _graph(weights, config).SerializeToString()
        return data
    if tokenize is None:
        raise ValueError("the int8 graph needs a tokenizer for its calibration texts")
    outliers = outlier_channels(weights, config, [tokenize(t) for t in CALIBRATION])
    from onnx import TensorProto
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        QuantType,
        quantize_dynamic,
    )

    with tempfile.TemporaryDirectory(prefix="orchestra-minilm-") as folder:
        source = Path(folder) / "minilm.onnx"
        target = Path(folder) / "minilm-int8.onnx"
        source.write_bytes(_graph(weights, config, outliers).SerializeToString())
        # The quantiser logs a generic "consider pre-processing" warning through the
        # root logger on every call; it is about calibration data we do not use.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(
                source,
                target,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=[
                    f"encoder.layer.{i}.{name}.outliers"
                    for i in range(int(config["num_hidden_layers"]))
                    for name in ("ffn.in", "ffn.out")
                ],
                extra_options={
                    "MatMulConstBOnly": True,
                    # Shape inference stops at the com.microsoft nodes.
                    "DefaultTensorType": TensorProto.FLOAT,
                },
            )
        finally:
            root.setLevel(level)
        return target.read_bytes()


class OnnxForward:
    """The encoder's forward pass (last hidden state) in an ONNX Runtime session."""

    def __init__(self, graph: bytes, *, threads: int | None) -> None:
        self._session = _session(graph, threads)

    def __call__(self, ids: Ids) -> Matrix:
        """Last hidden state, shape ``(batch, length, hidden)``; every row of ``ids`` is a
        whole text (same length, no padding: the graph has no attention mask)."""
        feeds = {"input_ids": ids.astype(np.int32)}
        out: Matrix = self._session.run(["last_hidden_state"], feeds)[0]
        return out
