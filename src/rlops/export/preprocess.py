"""The first nodes of every exported graph: the raw features in, ``Schema.encode``'s matrix out.

See :mod:`rlops.edge.layout` for the raw input and the formula. In ONNX::

    gathered = MatMul(context, select)           select: (raw width, encoded width), 0/1
    encoded  = Add(Mul(gathered, keep), Cast(Equal(gathered, code), double))

five nodes whatever the schema, in float64, exact. (``Gather`` on axis 1 and ``Where`` compute the same but ran
three times slower in onnxruntime, on a batch of 1,024.) A schema without categorical features needs none of them:
its raw input is already the encoded matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rlops.edge.layout import RawLayout
from rlops.edge.manifest import INPUT

PREFIX = "rlops_pre/"


def preprocessing_nodes(layout: RawLayout, output: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes and constants computing the float64 encoded matrix ``output`` from the graph input ``context``."""
    if layout.is_identity:
        return [helper.make_node("Identity", [INPUT], [output], name=f"{PREFIX}identity")], []
    source, is_code, code = layout.gather_plan()
    select = np.zeros((layout.width, source.shape[0]))
    select[source, np.arange(source.shape[0])] = 1.0
    constants = [
        numpy_helper.from_array(select, f"{PREFIX}select"),
        numpy_helper.from_array((~is_code).astype(np.float64), f"{PREFIX}keep"),
        numpy_helper.from_array(np.where(is_code, code, np.nan), f"{PREFIX}code"),
    ]

    def node(op: str, inputs: list[str], out: str, **attributes: Any) -> onnx.NodeProto:
        return helper.make_node(op, inputs, [out], name=out, **attributes)

    nodes = [
        node("MatMul", [INPUT, f"{PREFIX}select"], f"{PREFIX}gathered"),
        node("Equal", [f"{PREFIX}gathered", f"{PREFIX}code"], f"{PREFIX}hit"),
        node("Cast", [f"{PREFIX}hit"], f"{PREFIX}one_hot", to=TensorProto.DOUBLE),
        node("Mul", [f"{PREFIX}gathered", f"{PREFIX}keep"], f"{PREFIX}kept"),
        node("Add", [f"{PREFIX}kept", f"{PREFIX}one_hot"], output),
    ]
    return nodes, constants


def attach_preprocessing(head: onnx.ModelProto, layout: RawLayout) -> onnx.ModelProto:
    """Put the preprocessing in front of ``head``, a model whose one input is the encoded matrix.

    The head's input may be float64 (linear models) or float32 (SB3 networks, which SB3 also feeds float32): the
    encoded matrix is cast to the head's type. Returns a new model whose one input is ``context``, float64 of shape
    ``(n, layout.width)``, with the head's outputs.
    """
    graph = head.graph
    if len(graph.input) != 1:
        raise ValueError(f"the head must have exactly one input, got {[i.name for i in graph.input]}")
    head_input = graph.input[0]
    elem_type = head_input.type.tensor_type.elem_type
    encoded = f"{PREFIX}encoded"
    nodes, constants = preprocessing_nodes(layout, encoded if elem_type != TensorProto.DOUBLE else head_input.name)
    if elem_type != TensorProto.DOUBLE:
        nodes.append(helper.make_node("Cast", [encoded], [head_input.name], to=elem_type, name=f"{PREFIX}cast"))
    context = helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, ["n", layout.width])
    merged = helper.make_graph([*nodes, *graph.node], graph.name or "rlops_policy", [context], list(graph.output),
                               initializer=[*constants, *graph.initializer])
    model = helper.make_model(merged, opset_imports=list(head.opset_import), producer_name="rlops")
    model.ir_version = head.ir_version
    onnx.checker.check_model(model, full_check=True)
    return model


def preprocessing_model(layout: RawLayout, opset: int = 17) -> onnx.ModelProto:
    """A model of the preprocessing alone (output ``encoded``): what tests compare with ``Schema.encode``."""
    nodes, constants = preprocessing_nodes(layout, "encoded")
    context = helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, ["n", layout.width])
    width = int(np.asarray(layout.gather_plan()[0]).shape[0])
    encoded = helper.make_tensor_value_info("encoded", TensorProto.DOUBLE, ["n", width])
    graph = helper.make_graph(nodes, "rlops_preprocessing", [context], [encoded], initializer=constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="rlops")
