"""A policy's fitted preprocessing (:mod:`rlops.policies.preprocessing`) as ONNX nodes in front of its head.

For every encoded column, in float64, the same arithmetic as ``Preprocessor.transform``::

    raised = Max(x, floor)                                      floor: -inf where there is no Box-Cox
    boxcox = Where(lmbda == 0, Log(raised), (Pow(raised, lmbda) - 1) / lmbda)
    y      = Where(is_boxcox, boxcox, x)
    z      = (y - mean) / std                                   identity columns: mean 0, std 1
    out    = Where(is_identity, x, Clip(z, -clip, clip))

The unselected branch of a ``Where`` may hold NaN (a fractional power of a negative number): it is never chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rlops.policies.preprocessing import Preprocessor, Transform

PREFIX = "rlops_fit/"


def prepend_fitted(head: onnx.ModelProto, preprocessor: Preprocessor) -> onnx.ModelProto:
    """``head`` (one input: the encoded matrix) with ``preprocessor`` applied to its input first.

    The returned model's input keeps the head's input name, as float64; the transformed matrix is cast to the
    head's own input type (float32 for SB3 networks).
    """
    graph = head.graph
    if len(graph.input) != 1:
        raise ValueError(f"the head must have exactly one input, got {[i.name for i in graph.input]}")
    head_input = graph.input[0]
    elem_type = head_input.type.tensor_type.elem_type
    cols = preprocessor.columns
    is_boxcox = np.array([c.transform is Transform.BOXCOX for c in cols])
    is_identity = np.array([c.transform is Transform.IDENTITY for c in cols])
    lmbda = np.array([c.lmbda if c.transform is Transform.BOXCOX else 1.0 for c in cols])
    safe = np.where(lmbda == 0.0, 1.0, lmbda)
    clip = np.inf if preprocessor.clip is None else preprocessor.clip
    constants = {
        "floor": np.array([c.floor if c.transform is Transform.BOXCOX else -np.inf for c in cols]),
        "lmbda": safe, "log": lmbda == 0.0, "is_boxcox": is_boxcox, "is_identity": is_identity,
        "mean": np.array([0.0 if c.transform is Transform.IDENTITY else c.mean for c in cols]),
        "std": np.array([1.0 if c.transform is Transform.IDENTITY else c.std for c in cols]),
        "one": np.array(1.0), "low": np.array(-clip), "high": np.array(clip),
    }
    initializers = [numpy_helper.from_array(value, f"{PREFIX}{name}") for name, value in constants.items()]
    source = f"{PREFIX}input"
    nodes: list[onnx.NodeProto] = []

    def node(op: str, inputs: list[str], out: str, **attributes: Any) -> str:
        name = f"{PREFIX}{out}"
        nodes.append(helper.make_node(op, [i if i == source or i.startswith(PREFIX) else f"{PREFIX}{i}"
                                           for i in inputs], [name], name=name, **attributes))
        return name

    raised = node("Max", [source, "floor"], "raised")
    powered = node("Pow", [raised, "lmbda"], "powered")
    minus = node("Sub", [powered, "one"], "minus_one")
    ratio = node("Div", [minus, "lmbda"], "power_branch")
    logged = node("Log", [raised], "log_branch")
    boxcox = node("Where", ["log", logged, ratio], "boxcox")
    y = node("Where", ["is_boxcox", boxcox, source], "y")
    centred = node("Sub", [y, "mean"], "centred")
    scaled = node("Div", [centred, "std"], "scaled")
    clipped = node("Clip", [scaled, "low", "high"], "clipped")
    final = node("Where", ["is_identity", source, clipped], "out")
    if elem_type == TensorProto.DOUBLE:
        nodes.append(helper.make_node("Identity", [final], [head_input.name], name=f"{PREFIX}to_head"))
    else:
        nodes.append(helper.make_node("Cast", [final], [head_input.name], to=elem_type, name=f"{PREFIX}to_head"))
    new_input = helper.make_tensor_value_info(source, TensorProto.DOUBLE, ["n", len(cols)])
    merged = helper.make_graph([*nodes, *graph.node], graph.name or "rlops_policy", [new_input], list(graph.output),
                               initializer=[*initializers, *graph.initializer])
    model = helper.make_model(merged, opset_imports=list(head.opset_import), producer_name="rlops")
    model.ir_version = head.ir_version
    onnx.checker.check_model(model, full_check=True)
    return model
