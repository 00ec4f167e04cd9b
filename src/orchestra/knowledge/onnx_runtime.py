"""all-MiniLM-L6-v2 through ONNX Runtime: the same weights, a faster forward pass.

No exported graph ships with the model package, and exporting one needs torch, so the
graph is written here, node by node, from the same safetensors weights the numpy runtime
reads (:mod:`orchestra.knowledge.minilm`), with the same maths: BERT embeddings, six
encoder layers (exact erf GELU), then the last hidden state. Pooling and normalisation stay
in numpy, shared with the numpy runtime.

``int8=True`` quantises the weight matrices to int8 (ONNX Runtime's dynamic quantisation:
weights int8 per tensor, activations quantised per batch at run time). Its vectors are
checked against the float32 reference in the tests (cosine >= 0.99); it is what ingest uses.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


def _graph(weights: dict[str, Matrix], config: dict[str, Any]) -> Any:
    """The encoder as an ONNX ``ModelProto`` (opset 17), inputs ids/positions/mask."""
    from onnx import TensorProto, helper, numpy_helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: npt.NDArray[Any]) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def w(name: str) -> str:
        return const(name, np.ascontiguousarray(weights[name].astype(np.float32)))

    def wt(name: str) -> str:
        # Linear weights are stored (out, in); MatMul wants (in, out).
        return const(name + ".T", np.ascontiguousarray(weights[name].astype(np.float32).T))

    counter = iter(range(1_000_000))

    def node(op: str, inputs: list[str], name: str = "", **attrs: Any) -> str:
        out = name or f"{op.lower()}_{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def layer_norm(x: str, prefix: str) -> str:
        return node(
            "LayerNormalization",
            [x, w(prefix + ".weight"), w(prefix + ".bias")],
            axis=-1,
            epsilon=eps,
        )

    def linear(x: str, prefix: str) -> str:
        product = node("MatMul", [x, wt(prefix + ".weight")], name=prefix + ".matmul")
        return node("Add", [product, w(prefix + ".bias")])

    e = "embeddings."
    words = node("Gather", [w(e + "word_embeddings.weight"), "input_ids"])
    positions = node("Gather", [w(e + "position_embeddings.weight"), "position_ids"])
    token_type = const("token_type0", weights[e + "token_type_embeddings.weight"][0].copy())
    x = node("Add", [node("Add", [words, positions]), token_type])
    x = layer_norm(x, e + "LayerNorm")
    # Padded keys get a large negative bias so softmax gives them ~0 weight, as in BERT.
    one = const("one", np.array(1.0, dtype=np.float32))
    low = const("low", np.array(np.finfo(np.float32).min, dtype=np.float32))
    bias = node("Mul", [node("Sub", [one, "attention_mask"]), low])
    bias = node("Unsqueeze", [bias, const("axes12", np.array([1, 2], dtype=np.int64))])
    merge_shape = const("merge_shape", np.array([0, 0, hidden], dtype=np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    root2 = const("root2", np.array(math.sqrt(2.0), dtype=np.float32))
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        q, k, v = (
            node("MatMul", [x, wt(f"{p}attention.self.{n}.weight")])
            for n in ("query", "key", "value")
        )
        parts = []
        for name, proj in (("query", q), ("key", k), ("value", v)):
            added = node("Add", [proj, w(f"{p}attention.self.{name}.bias")])
            shaped = node(
                "Reshape",
                [added, const(f"head_shape{i}{name}", np.array([0, 0, heads, head_dim]))],
            )
            parts.append(node("Transpose", [shaped], perm=[0, 2, 1, 3]))
        keys_t = node("Transpose", [parts[1]], perm=[0, 1, 3, 2])
        scores = node("Add", [node("Mul", [node("MatMul", [parts[0], keys_t]), scale]), bias])
        probs = node("Softmax", [scores], axis=-1)
        context = node("Transpose", [node("MatMul", [probs, parts[2]])], perm=[0, 2, 1, 3])
        context = node("Reshape", [context, merge_shape])
        attn = linear(context, p + "attention.output.dense")
        x = layer_norm(node("Add", [attn, x]), p + "attention.output.LayerNorm")
        inner = linear(x, p + "intermediate.dense")
        erf = node("Erf", [node("Div", [inner, root2])])
        gelu = node("Mul", [node("Mul", [inner, half]), node("Add", [erf, one])])
        out = linear(gelu, p + "output.dense")
        x = layer_norm(node("Add", [out, x]), p + "output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "length"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["batch", "length"]),
        ],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "length", hidden]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def build_graph(weights: dict[str, Matrix], config: dict[str, Any], *, int8: bool) -> bytes:
    """The serialised encoder graph; with ``int8``, its weights quantised (seconds of work,
    which :mod:`orchestra.knowledge.model_cache` keeps on disk)."""
    data: bytes = _graph(weights, config).SerializeToString()
    if not int8:
        return data
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        QuantType,
        quantize_dynamic,
    )

    with tempfile.TemporaryDirectory(prefix="orchestra-minilm-") as folder:
        source = Path(folder) / "minilm.onnx"
        target = Path(folder) / "minilm-int8.onnx"
        source.write_bytes(data)
        # Per-channel int8 weights; activation x activation products (attention) and
        # the FFN output projections (the widest activation range, after GELU) stay
        # float32: quantising those moved vectors to cosine 0.89 / 0.988 of the
        # reference, this keeps >= 0.99 at most of the speed.
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
                nodes_to_exclude=[
                    f"encoder.layer.{i}.output.dense.matmul"
                    for i in range(int(config["num_hidden_layers"]))
                ],
                extra_options={"MatMulConstBOnly": True},
            )
        finally:
            root.setLevel(level)
        return target.read_bytes()


class OnnxForward:
    """The encoder's forward pass (last hidden state) in an ONNX Runtime session."""

    def __init__(self, graph: bytes, *, threads: int | None) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            graph, sess_options=options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, ids: npt.NDArray[np.int64], mask: Matrix) -> Matrix:
        """Last hidden state, shape ``(batch, length, hidden)``."""
        positions = np.arange(ids.shape[1], dtype=np.int64)[None, :]
        feeds = {"input_ids": ids, "position_ids": positions, "attention_mask": mask}
        out: Matrix = self._session.run(["last_hidden_state"], feeds)[0]
        return out
