#!/usr/bin/env python3
"""PyTorch peer for bench/flash_attention.bench.ts: attention forward + backward on the CPU,
float32, in eager mode.

torch 1.13 (Debian's python3-torch) has no public torch.nn.functional.scaled_dot_product_attention
(it arrived in 2.0). It has the private F._scaled_dot_product_attention(q, k, v, attn_mask,
dropout_p, need_attn_weights, is_causal), which on the CPU runs the math composition
(q * scale) @ k^T -> masked softmax -> @ v, materialising the [L, L] scores and probabilities
(its fused flash / memory-efficient kernels are CUDA-only in 1.13). This script uses
F.scaled_dot_product_attention when present (torch >= 2.0, where the CPU also has a fused flash
kernel), else the private 1.13 entry point, else the same composition written out; "impl" in the
output says which ran.

stdin: {"threads", "cases": [{"id", "B", "H", "L", "hd", "causal", "reps"}], "mem": bool}
stdout: {"torch", "impl", "threads", "times": {id: median seconds of fwd+bwd},
         "fwd": {id: median seconds of the forward alone}}
With "mem" (one case, run in a fresh process by the bench): {"peak_rss_bytes": growth of the
process's peak RSS (VmHWM of /proc/self/status; ru_maxrss where that is missing: it is not reset
by exec, so it starts at the parent's RSS) over one forward + backward, after inputs are
allocated and one warm-up run of a smaller problem has loaded the libraries}.
"""
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def attention_fn():
    if hasattr(F, "scaled_dot_product_attention"):
        return "F.scaled_dot_product_attention", lambda q, k, v, causal: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if hasattr(F, "_scaled_dot_product_attention"):
        def private(q, k, v, causal):
            return F._scaled_dot_product_attention(q, k, v, None, 0.0, False, causal)[0]
        return "F._scaled_dot_product_attention (1.13, math path)", private

    def composed(q, k, v, causal):
        s = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
        if causal:
            L, S = s.shape[-2], s.shape[-1]
            s = s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(1), float("-inf"))
        return torch.softmax(s, dim=-1) @ v
    return "composition (q k^T, softmax, @ v)", composed


def make(case):
    g = torch.Generator().manual_seed(0)
    shape = (case["B"], case["H"], case["L"], case["hd"])
    q, k, v = (torch.randn(shape, generator=g, requires_grad=True) for _ in range(3))
    do = torch.randn(shape, generator=g)
    return q, k, v, do


def step(fn, q, k, v, do, causal):
    out = fn(q, k, v, causal)
    out.backward(do)
    q.grad = k.grad = v.grad = None


def median_time(f, reps, min_time=0.3):
    f()  # warm-up
    samples = []
    start = time.perf_counter()
    while len(samples) < reps or (time.perf_counter() - start < min_time and len(samples) < 50):
        t = time.perf_counter()
        f()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def peak_rss():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    cfg = json.load(sys.stdin)
    torch.set_num_threads(int(cfg["threads"]))
    impl, fn = attention_fn()
    if cfg.get("mem"):
        case = cfg["cases"][0]
        small = dict(case, L=64)
        step(fn, *make(small), small["causal"])  # load kernels / thread pool
        q, k, v, do = make(case)
        before = peak_rss()
        step(fn, q, k, v, do, case["causal"])
        after = peak_rss()
        print(json.dumps({"peak_rss_bytes": after - before, "impl": impl}))
        return
    times, fwd = {}, {}
    for case in cfg["cases"]:
        q, k, v, do = make(case)
        c = case["causal"]
        times[case["id"]] = median_time(lambda: step(fn, q, k, v, do, c), case.get("reps", 5))
        with torch.no_grad():
            fwd[case["id"]] = median_time(lambda: fn(q, k, v, c), case.get("reps", 5))
    print(json.dumps({"torch": torch.__version__, "impl": impl, "threads": torch.get_num_threads(),
                      "times": times, "fwd": fwd}))


if __name__ == "__main__":
    main()
