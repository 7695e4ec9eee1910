#!/usr/bin/env python3
"""PyTorch peer for bench/gpu/ops_bench.ts: memory-bound ops on a CUDA float32 tensor, eager mode.

Reads a JSON config from argv[1] (or stdin when absent):
  {"rows": 8192, "cols": 8192, "ops": ["copy", "add", ...], "iters": 50, "rounds": 5}
and prints ONE JSON line:
  {"torch": version, "device": name, "times": {op: best seconds per call}, "errors": {op: text}}

Ops (x, y: [rows, cols] standard normal; w, b: [cols]); the same as the tessera side:
  copy      out.copy_(x)                    (out preallocated: the achievable-bandwidth baseline)
  add       x + y
  exp       torch.exp(x)
  gelu      F.gelu(x)                       (exact erf form, as ts.gelu's default)
  sum       x.sum(-1)
  softmax   torch.softmax(x, -1)
  layernorm F.layer_norm(x, (cols,), w, b, 1e-5)

Timing: 3 warm-up calls, then `rounds` rounds of `iters` back-to-back calls between two
torch.cuda.synchronize(); each op reports its best round's time per call. Outputs are allocated
by each call (torch's caching allocator hands the same block back), as on the tessera side.
When a call takes more than 5 ms, iters is reduced so one round stays near 250 ms.
Exits 3 with {"error": ...} when torch sees no CUDA device.
"""
import json
import sys
import time


def main():
    cfg = json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read())
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch.cuda.is_available() is False", "torch": torch.__version__}))
        sys.exit(3)
    rows, cols = int(cfg["rows"]), int(cfg["cols"])
    iters0, rounds = int(cfg.get("iters", 50)), int(cfg.get("rounds", 5))
    ops = cfg.get("ops", ["copy", "add", "exp", "gelu", "sum", "softmax", "layernorm"])
    dev = torch.device("cuda")
    torch.manual_seed(0)
    x = torch.randn(rows, cols, device=dev, dtype=torch.float32)
    y = torch.randn(rows, cols, device=dev, dtype=torch.float32)
    w = torch.randn(cols, device=dev, dtype=torch.float32)
    b = torch.randn(cols, device=dev, dtype=torch.float32)
    out = torch.empty_like(x)
    fns = {
        "copy": lambda: out.copy_(x),
        "add": lambda: x + y,
        "exp": lambda: torch.exp(x),
        "gelu": lambda: F.gelu(x),
        "sum": lambda: x.sum(-1),
        "softmax": lambda: torch.softmax(x, -1),
        "layernorm": lambda: F.layer_norm(x, (cols,), w, b, 1e-5),
    }
    times, errors = {}, {}
    with torch.no_grad():
        for name in ops:
            fn = fns.get(name)
            if fn is None:
                errors[name] = "unknown op"
                continue
            try:
                for _ in range(3):
                    fn()
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(3):
                    fn()
                torch.cuda.synchronize()
                per = (time.perf_counter() - t0) / 3
                iters = iters0 if per <= 5e-3 else max(3, round(0.25 / per))
                best = float("inf")
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    for _ in range(iters):
                        fn()
                    torch.cuda.synchronize()
                    best = min(best, (time.perf_counter() - t0) / iters)
                times[name] = best
            except Exception as e:  # report and go on with the next op
                errors[name] = f"{type(e).__name__}: {e}"
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
                      "times": times, "errors": errors}))


if __name__ == "__main__":
    main()
