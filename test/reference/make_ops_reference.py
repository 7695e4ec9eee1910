#!/usr/bin/env python3
"""Writes test/reference/ops_reference.json: float64 inputs, outputs and input gradients of
tessera's ops computed by PyTorch (Debian's python3-torch), which test/ops/torch_parity.test.ts
compares against. Run it again (python3 test/reference/make_ops_reference.py) to remake the file.

Each case's gradient is that of sum(out * W) with W[i] = sin(1.7 i + 0.3) + 0.1 over the
flattened output, so every output element contributes."""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)
cases = []


def weights_like(out):
    n = out.numel()
    return torch.tensor([math.sin(1.7 * i + 0.3) + 0.1 for i in range(n)]).reshape(out.shape)


def add(name, fn, inputs, params=None, grad=True):
    """inputs: list of tensors (float ones get gradients) ; params: JSON-able op parameters."""
    leaves = [t.clone().requires_grad_(grad and t.is_floating_point()) for t in inputs]
    out = fn(*leaves)
    entry = {
        "name": name,
        "params": params or {},
        "inputs": [{"shape": list(t.shape), "dtype": "float64" if t.is_floating_point() else "int32",
                    "data": t.flatten().tolist()} for t in inputs],
        "output": {"shape": list(out.shape), "data": out.detach().flatten().tolist()},
        "grads": [],
    }
    if grad and out.requires_grad:
        (out * weights_like(out)).sum().backward()
        entry["grads"] = [None if l.grad is None else l.grad.flatten().tolist() if l.is_floating_point() else None
                          for l in leaves]
    cases.append(entry)


r = lambda *s: torch.randn(*s)
pos = lambda *s: torch.rand(*s) * 1.5 + 0.25

for op, fn in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("maximum", torch.maximum),
               ("minimum", torch.minimum)]:
    add(op, fn, [r(3, 1, 4), r(2, 4)])
add("div", torch.div, [r(3, 4), pos(4)])
add("pow", torch.pow, [pos(2, 3), r(3)])

unary = {
    "neg": torch.neg, "exp": torch.exp, "abs": torch.abs, "relu": torch.relu, "sigmoid": torch.sigmoid,
    "logsigmoid": F.logsigmoid, "tanh": torch.tanh, "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "softplus": F.softplus,
    "softplus_b2_t1": lambda x: F.softplus(x, beta=2, threshold=1),
    "clamp": lambda x: torch.clamp(x, -0.4, 0.6), "pow3": lambda x: torch.pow(x, 3),
}
for name, fn in unary.items():
    add(name, fn, [r(4, 5)])
for name, fn in {"log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
                 "pow_m1.5": lambda x: torch.pow(x, -1.5)}.items():
    add(name, fn, [pos(4, 5)])

for dims, keep in [(None, False), ([0], False), ([1], True), ([0, 2], False), ([-1], True)]:
    d = dims if dims is not None else [0, 1, 2]
    p = {"dims": dims, "keepdim": keep}
    x = r(3, 4, 5)
    add("sum", lambda t: t.sum(dim=d, keepdim=keep), [x], p)
    add("mean", lambda t: t.mean(dim=d, keepdim=keep), [x], p)
    add("max", lambda t: t.amax(dim=d, keepdim=keep), [x], p)
    add("min", lambda t: t.amin(dim=d, keepdim=keep), [x], p)
    add("logsumexp", lambda t: torch.logsumexp(t, dim=d, keepdim=keep), [x], p)
    add("var", lambda t: t.var(dim=d, keepdim=keep), [x], p)

for sa, sb in [((3, 4), (4, 5)), ((4,), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2))]:
    add("matmul", torch.matmul, [r(*sa), r(*sb)])

for dim in [-1, 0, 1]:
    add("softmax", lambda t: torch.softmax(t, dim=dim), [r(3, 4, 5)], {"dim": dim})
    add("log_softmax", lambda t: torch.log_softmax(t, dim=dim), [r(3, 4, 5)], {"dim": dim})
add("layer_norm", lambda x, w, b: F.layer_norm(x, [6], w, b), [r(2, 3, 6), r(6), r(6)], {"shape": [6]})
add("layer_norm_2d", lambda x: F.layer_norm(x, [3, 6]), [r(2, 3, 6)], {"shape": [3, 6]})
tgt = torch.tensor([2, 0, 4, 1, -100, 3], dtype=torch.int32)
for red in ["mean", "sum", "none"]:
    for ls in [0.0, 0.1]:
        add("cross_entropy", lambda x, t: F.cross_entropy(x, t.long(), reduction=red, label_smoothing=ls),
            [r(6, 5), tgt], {"reduction": red, "labelSmoothing": ls})

idx = torch.tensor([[0, 2, 1], [3, 3, 0]], dtype=torch.int32)
add("gather", lambda x, i: torch.gather(x, 1, i.long()), [r(2, 4), idx], {"dim": 1})
add("index_select", lambda x, i: torch.index_select(x, 0, i.long()), [r(5, 3), torch.tensor([4, 0, 4, 2], dtype=torch.int32)], {"dim": 0})
add("embedding", lambda w, i: F.embedding(i.long(), w), [r(6, 4), torch.tensor([[1, 5], [1, 0]], dtype=torch.int32)])
add("scatter_add", lambda x, i, s: torch.scatter_add(x, 0, i.long(), s), [r(4, 3), torch.tensor([[0, 3, 1], [0, 0, 2]], dtype=torch.int32), r(2, 3)], {"dim": 0})
add("cat", lambda a, b: torch.cat([a, b], dim=1), [r(2, 3), r(2, 2)], {"dim": 1})
add("stack", lambda a, b: torch.stack([a, b], dim=1), [r(2, 3), r(2, 3)], {"dim": 1})
add("normalize", lambda x: F.normalize(x, dim=-1), [r(3, 5)], {"dim": -1})

out = {"generator": "test/reference/make_ops_reference.py", "torch": torch.__version__, "cases": cases}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops_reference.json")
with open(path, "w") as f:
    json.dump(out, f)
print(f"wrote {len(cases)} cases to {path} (torch {torch.__version__})")
