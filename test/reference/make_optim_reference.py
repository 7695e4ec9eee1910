#!/usr/bin/env python3
"""Writes test/reference/optim_reference.json: 10 float64 optimizer steps by PyTorch (Debian's
python3-torch) on small fixed parameters with fixed per-step gradients, which
test/optim/torch_parity.test.ts replays through tessera's optimizers. Run it again
(/usr/bin/python3 test/reference/make_optim_reference.py) to remake the file.

Cases: torch.optim.AdamW, torch.optim.SGD (plain, momentum with dampening, Nesterov, all with
weight decay), Lion written out as lucidrains/lion-pytorch's update_fn, param groups with
different hyper-parameters, and torch.nn.utils.clip_grad_norm_ before each step (its returned
norms are recorded too)."""
import json
import os

import torch

torch.set_default_dtype(torch.float64)
STEPS = 10
SHAPES = [[3, 4], [4], [2, 1, 3]]


def lion_step(params, lr, betas, weight_decay, state):
    """lucidrains/lion-pytorch Lion.step (update_fn), written out."""
    beta1, beta2 = betas
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            if p not in state:
                state[p] = torch.zeros_like(p)
            exp_avg = state[p]
            p.data.mul_(1 - lr * weight_decay)
            update = exp_avg.clone().mul_(beta1).add(p.grad, alpha=1 - beta1).sign_()
            p.add_(update, alpha=-lr)
            exp_avg.mul_(beta2).add_(p.grad, alpha=1 - beta2)


def run_case(name, kind, options, groups=None, clip=None, seed=0):
    """groups: list of (param indices, overrides); None = one group of every parameter."""
    gen = torch.Generator().manual_seed(1000 + seed)
    init = [torch.randn(*s, generator=gen) for s in SHAPES]
    grads = [[torch.randn(*s, generator=gen) * (1 + step % 3) for s in SHAPES] for step in range(STEPS)]
    params = [t.clone().requires_grad_(True) for t in init]
    if groups is None:
        spec = params
    else:
        spec = [dict(params=[params[i] for i in idx], **over) for idx, over in groups]
    lion_state = {}
    if kind == "AdamW":
        opt = torch.optim.AdamW(spec, **options, foreach=False)
    elif kind == "SGD":
        opt = torch.optim.SGD(spec, **options, foreach=False)
    afters, norms = [], []
    for step in range(STEPS):
        for p, g in zip(params, grads[step]):
            p.grad = g.clone()
        if clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, clip)))
        if kind == "Lion":
            if groups is None:
                lion_step(params, options["lr"], options["betas"], options["weight_decay"], lion_state)
            else:
                for idx, over in groups:
                    o = {**options, **over}
                    lion_step([params[i] for i in idx], o["lr"], o["betas"], o["weight_decay"], lion_state)
        else:
            opt.step()
        afters.append([p.detach().flatten().tolist() for p in params])
    return {
        "name": name,
        "optimizer": kind,
        "options": options,
        "groups": None if groups is None else [{"params": idx, "options": over} for idx, over in groups],
        "clip": clip,
        "shapes": SHAPES,
        "init": [t.flatten().tolist() for t in init],
        "grads": [[g.flatten().tolist() for g in gs] for gs in grads],
        "after": afters,
        "norms": norms,
    }


cases = [
    run_case("adamw", "AdamW", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1), seed=1),
    run_case("adamw_betas_eps", "AdamW", dict(lr=3e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.5), seed=2),
    run_case("adamw_groups", "AdamW", dict(lr=1e-2, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.2),
             groups=[([0, 2], {}), ([1], dict(weight_decay=0.0, lr=2e-2))], seed=3),
    run_case("adamw_clip", "AdamW", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1), clip=1.5, seed=4),
    run_case("sgd", "SGD", dict(lr=0.05, momentum=0.0, dampening=0.0, weight_decay=0.01, nesterov=False), seed=5),
    run_case("sgd_momentum", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False), seed=6),
    run_case("sgd_nesterov", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.0, weight_decay=0.02, nesterov=True), seed=7),
    run_case("sgd_momentum_clip", "SGD", dict(lr=0.05, momentum=0.8, dampening=0.0, weight_decay=0.0, nesterov=False),
             clip=2.0, seed=8),
    run_case("lion", "Lion", dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1), seed=9),
    run_case("lion_groups", "Lion", dict(lr=3e-3, betas=(0.95, 0.98), weight_decay=0.5),
             groups=[([0], {}), ([1, 2], dict(weight_decay=0.0))], seed=10),
]

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_reference.json")
with open(out, "w") as f:
    json.dump({"torch": torch.__version__, "steps": STEPS, "cases": cases}, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {out} ({os.path.getsize(out)} bytes)")
