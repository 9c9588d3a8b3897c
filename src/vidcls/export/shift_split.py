"""Rewrite an exported online TSM step so onnxruntime moves (almost) no memory for the shift.

The online step, as PyTorch traces it, builds each shifted block's input as
``Concat(cache, Slice(x, fold:))`` and the next cache as ``Slice(x, :fold)``. PyTorch's slice
is a view; onnxruntime's is a copy, and on x86 onnxruntime also runs convolutions in a blocked
channel layout (NCHWc, 8 or 16 channels a block) that a ``Slice`` or ``Concat`` of the plain
layout cannot read: every shifted block then pays a reorder of ``x`` out of the blocked layout,
the slice, the concat and a reorder back -- four passes over the block input (ResNet-50 online
at 1.05-1.11 of the 2-D frame). Measured with onnxruntime's profiler: the convolutions take
the same time in both graphs, the difference is exactly those four ops.

This pass keeps the *residual stream* in two tensors instead: ``x_a`` (the ``fold`` channels
that get cached) and ``x_b`` (the others). Then nothing is sliced or concatenated:

* a tensor made by ``Relu`` / ``Add`` is made part by part (``Relu(y_a)``, ``Add(p_a, q_a)``);
* a tensor made by a ``Conv`` is made by two convolutions over the output channels (the
  weights split along their first axis: no extra multiply-accumulate);
* a ``Conv`` reading a split tensor reads both parts: ``Conv(x_a, W[:, :fold]) +
  Conv(x_b, W[:, fold:])`` (the weights split along the input axis; the sum and the following
  ``Relu`` fuse into the second convolution, which accumulates in place);
* the shifted block input is just the pair ``(cache, x_b)``, and the next cache is ``x_a``.

onnxruntime's blocked layout wants both parts a whole number of blocks, so a site is rewritten
only when ``fold`` and ``channels - fold`` are multiples of ``align`` (16: good for 8- and
16-channel blocks) and the convolution it feeds is followed by nothing or a ``Relu`` (a
``Clip`` after a summed convolution does not fuse there and would cost more than the copy).
TSM-ResNet-50: 15 of its 16 shifted blocks (the first, 64 channels, has ``fold = 8``);
TSM-MobileNetV2 (folds of 3 to 20 channels): none, the graph stays as it is.

The result is plain ONNX (any runtime reads it) and computes the same function; the tests
compare it with the unrewritten graph and with :class:`~vidcls.models.online_tsm.OnlineTSM`.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

__all__ = ["split_shift_channels", "ALIGN"]

#: part sizes must be multiples of this (onnxruntime's NCHWc block: 8 on AVX2, 16 on AVX-512)
ALIGN = 16
#: activations onnxruntime fuses into a convolution that accumulates a sum
_FUSABLE_AFTER_SUM = {"Relu", "Sigmoid", "Tanh"}
#: element-wise ops that commute with a channel split (applied to each part)
_ELEMENTWISE = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish"}


@dataclass(frozen=True)
class _Site:
    """One shifted block: ``shifted = Concat(state_in, x[:, fold:])``, ``state_out = x[:, :fold]``."""

    x: str
    fold: int
    shifted: str
    state_in: str
    state_out: str


class _Graph:
    """Index of a GraphProto: producers, consumers, constant values (initializers, Constant
    nodes, through Identity), channel counts (from ONNX shape inference)."""

    def __init__(self, model):
        import onnx
        from onnx import numpy_helper

        self.graph = model.graph
        self.const = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.const[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self._bypass_identities()
        inferred = onnx.shape_inference.infer_shapes(model).graph
        self.channels: dict[str, int] = {}
        for value in [*inferred.value_info, *inferred.input, *inferred.output]:
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[1].HasField("dim_value"):
                self.channels[value.name] = dims[1].dim_value
        self.producer = {out: n for n in self.graph.node for out in n.output}
        self.consumers: dict[str, list] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self._names = itertools.count()

    def _bypass_identities(self) -> None:
        """Point readers of an ``Identity`` at its input (the tracer shares equal biases that
        way), so a weight is found as a constant wherever it is read."""
        outputs = {o.name for o in self.graph.output}
        alias = {n.output[0]: n.input[0] for n in self.graph.node
                 if n.op_type == "Identity" and n.output[0] not in outputs}

        def resolve(name: str) -> str:
            while name in alias:
                name = alias[name]
            return name
        for node in self.graph.node:
            node.input[:] = [resolve(name) for name in node.input]

    def fresh(self, base: str) -> str:
        return f"{base}_split{next(self._names)}"

    def add_const(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        self.const[name] = value
        return name

    def ints(self, name: str) -> list[int] | None:
        value = self.const.get(name)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def channel_slice(self, node) -> tuple[int, int] | None:
        """``(start, end)`` of a ``Slice`` along axis 1 with step 1, else None."""
        if node is None or node.op_type != "Slice" or len(node.input) < 4:
            return None
        starts, ends, axes = (self.ints(node.input[k]) for k in (1, 2, 3))
        steps = self.ints(node.input[4]) if len(node.input) > 4 else [1]
        if None in (starts, ends, axes, steps) or axes != [1] or steps != [1]:
            return None
        return starts[0], ends[0]

    def plain_conv(self, node) -> bool:
        """A group-1 Conv with constant weights (and bias): one we can split."""
        return (node.op_type == "Conv" and _attr(node, "group", 1) == 1
                and node.input[1] in self.const
                and (len(node.input) < 3 or not node.input[2] or node.input[2] in self.const))

    def fuses_after_sum(self, conv) -> bool:
        """Whether a sum added after ``conv`` keeps its activation fused (see the docstring)."""
        readers = self.consumers.get(conv.output[0], [])
        return not any(r.op_type in _ELEMENTWISE - _FUSABLE_AFTER_SUM for r in readers)


def _attr(node, name: str, default=None):
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _find_sites(g: _Graph) -> list[_Site]:
    """The shifted blocks of an online export (inputs ``state_in_i``, outputs ``state_out_i``)."""
    sites = []
    for value in g.graph.input:
        if not value.name.startswith("state_in_"):
            continue
        readers = g.consumers.get(value.name, [])
        if len(readers) != 1 or readers[0].op_type != "Concat" or _attr(readers[0], "axis") != 1:
            continue
        concat = readers[0]
        if len(concat.input) != 2 or concat.input[0] != value.name:
            continue
        fold = g.channels.get(value.name)
        rest = g.producer.get(concat.input[1])
        bounds = g.channel_slice(rest)
        if fold is None or bounds is None or bounds[0] != fold:
            continue
        out_name = value.name.replace("state_in_", "state_out_")
        cached = g.producer.get(out_name)
        if cached is None or cached.input[0] != rest.input[0] or g.channel_slice(cached) != (0, fold):
            continue
        sites.append(_Site(rest.input[0], fold, concat.output[0], value.name, out_name))
    return sites


class _Splitter:
    """Builds the two-part form of the residual streams around the chosen sites."""

    def __init__(self, g: _Graph, sites: list[_Site]):
        self.g = g
        self.sites = {s.shifted: s for s in sites}
        self.parts: dict[str, tuple[str, str, int]] = {}  # tensor -> (a, b, fold)
        self.superseded: set[int] = set()  # id() of original nodes now computed part by part
        self.nodes: list = []

    def emit(self, op: str, inputs: list[str], output: str, like=None, **attrs) -> str:
        from onnx import helper

        node = helper.make_node(op, inputs, [output], name=self.g.fresh(output))
        if like is not None:
            node.attribute.extend(like.attribute)
        node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
        self.nodes.append(node)
        return output

    def split(self, name: str, fold: int) -> tuple[str, str]:
        """``name`` as ``(first fold channels, the rest)``, pushing the split up its producers."""
        if name in self.parts:
            a, b, known = self.parts[name]
            if known != fold:
                raise _NotSplittable(f"{name} is split at {known} and {fold}")
            return a, b
        g, node = self.g, self.g.producer.get(name)
        if name in self.sites:  # the shifted block input: the cache, then x's other channels
            a, b = self.sites[name].state_in, self.split(self.sites[name].x, fold)[1]
        elif node is not None and node.op_type in _ELEMENTWISE:
            (ia, ib), extra = self.split(node.input[0], fold), list(node.input[1:])
            a = self.emit(node.op_type, [ia, *extra], g.fresh(name + "_a"), like=node)
            b = self.emit(node.op_type, [ib, *extra], g.fresh(name + "_b"), like=node)
            self.superseded.add(id(node))
        elif node is not None and node.op_type == "Add" and not set(node.input) & g.const.keys():
            (pa, pb), (qa, qb) = self.split(node.input[0], fold), self.split(node.input[1], fold)
            a = self.emit("Add", [pa, qa], g.fresh(name + "_a"))
            b = self.emit("Add", [pb, qb], g.fresh(name + "_b"))
            self.superseded.add(id(node))
        elif node is not None and g.plain_conv(node):  # output channels split: same work
            weight, bias = self._weights(node)
            a = self.conv(node, weight[:fold], None if bias is None else bias[:fold],
                          g.fresh(name + "_a"))
            b = self.conv(node, weight[fold:], None if bias is None else bias[fold:],
                          g.fresh(name + "_b"))
            self.superseded.add(id(node))
        else:  # nothing to push the split into: one Split node (a copy, as before)
            channels = g.channels.get(name)
            if channels is None:
                raise _NotSplittable(f"channel count of {name} unknown")
            a, b = g.fresh(name + "_a"), g.fresh(name + "_b")
            sizes = g.add_const(name + "_sizes", np.array([fold, channels - fold], np.int64))
            from onnx import helper

            self.nodes.append(helper.make_node("Split", [name, sizes], [a, b], axis=1,
                                               name=g.fresh(a)))
        self.parts[name] = (a, b, fold)
        return a, b

    def _weights(self, node) -> tuple[np.ndarray, np.ndarray | None]:
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        return self.g.const[node.input[1]], None if bias is None else self.g.const[bias]

    def conv(self, node, weight: np.ndarray, bias: np.ndarray | None, out: str) -> str:
        """``node``'s convolution with ``weight`` (its output channels chosen) into ``out``; on a
        split input, one convolution per part (input axis of the weights split), summed."""
        g, x = self.g, node.input[0]
        if x not in self.parts:
            inputs = [x, g.add_const(node.input[1], weight)]
            if bias is not None:
                inputs.append(g.add_const(node.input[2], bias))
            return self.emit("Conv", inputs, out, like=node)
        a, b, fold = self.parts[x]
        inputs_a = [a, g.add_const(node.input[1], weight[:, :fold])]
        if bias is not None:
            inputs_a.append(g.add_const(node.input[2], bias))
        part_a = self.emit("Conv", inputs_a, g.fresh(out + "_ka"), like=node)
        part_b = self.emit("Conv", [b, g.add_const(node.input[1], weight[:, fold:])],
                           g.fresh(out + "_kb"), like=node)
        return self.emit("Add", [part_b, part_a], out)  # the big one accumulates in place

    def propagate(self) -> set[str]:
        """Make every reader of a split tensor read its parts; returns the tensors some reader
        still needs whole (rebuilt with one Concat)."""
        g, whole, done = self.g, set(), set()
        site_nodes = {id(g.producer[s.shifted]) for s in self.sites.values()}
        site_nodes |= {id(g.producer[s.state_out]) for s in self.sites.values()}
        site_nodes |= {id(g.producer[g.producer[s.shifted].input[1]]) for s in self.sites.values()}
        while pending := [t for t in self.parts if t not in done]:
            for name in pending:
                done.add(name)
                fold = self.parts[name][2]
                for reader in g.consumers.get(name, []):
                    if id(reader) in self.superseded or id(reader) in site_nodes:
                        continue
                    if reader.op_type in _ELEMENTWISE or (
                            reader.op_type == "Add" and not set(reader.input) & g.const.keys()):
                        self.split(reader.output[0], fold)
                    elif (g.plain_conv(reader) and reader.input[0] == name
                          and g.fuses_after_sum(reader)):
                        self.conv(reader, *self._weights(reader), reader.output[0])
                        self.superseded.add(id(reader))
                    else:
                        whole.add(name)
        self.superseded |= site_nodes
        return whole


class _NotSplittable(Exception):
    pass


def split_shift_channels(model, align: int = ALIGN) -> int:
    """Rewrite the online step ``model`` (an ``onnx.ModelProto``, changed in place) as
    described in the module docstring; returns the number of shifted blocks rewritten (0: the
    model is left as it was)."""
    g = _Graph(model)
    sites = [s for s in _find_sites(g)
             if s.fold % align == 0 and (g.channels.get(s.x, 0) - s.fold) % align == 0
             and g.channels.get(s.x, 0) > s.fold
             and all(g.fuses_after_sum(r) for r in g.consumers.get(s.shifted, [])
                     if r.op_type == "Conv")]
    if not sites:
        return 0
    splitter = _Splitter(g, sites)
    try:
        for site in sites:
            splitter.split(site.shifted, site.fold)
        whole = splitter.propagate()
    except _NotSplittable:  # an unexpected graph: keep the traced one
        return 0
    nodes = splitter.nodes
    made_again = set()
    for name in whole:  # a reader needs the whole tensor back (e.g. the global pool)
        a, b, _ = splitter.parts[name]
        nodes.append(_concat(g, a, b, name))
        made_again.add(name)
    rename = {splitter.parts[s.x][0]: s.state_out for s in sites}  # the next cache is x_a
    for node in nodes:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    kept = [n for n in g.graph.node if id(n) not in splitter.superseded
            and not made_again.intersection(n.output)]
    _replace_nodes(g.graph, kept + nodes)
    return len(sites)


def _concat(g: _Graph, a: str, b: str, out: str):
    from onnx import helper

    return helper.make_node("Concat", [a, b], [out], axis=1, name=g.fresh(out))


def _replace_nodes(graph, nodes: list) -> None:
    """Put ``nodes`` in the graph in topological order, drop what no output needs."""
    needed = {o.name for o in graph.output}
    producer = {out: n for n in nodes for out in n.output}
    live: dict[int, object] = {}
    stack = list(needed)
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in live:
            live[id(node)] = node
            stack.extend(node.input)
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    ordered, pending = [], [n for n in nodes if id(n) in live]
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise RuntimeError("split_shift_channels made a graph with a cycle")
        for node in ready:
            available.update(node.output)
        ordered += ready
        taken = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in taken]
    used = {i for n in ordered for i in n.input}
    initializers = [i for i in graph.initializer if i.name in used]
    del graph.node[:], graph.initializer[:], graph.value_info[:]
    graph.node.extend(ordered)
    graph.initializer.extend(initializers)
