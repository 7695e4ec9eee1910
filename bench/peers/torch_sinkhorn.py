#!/usr/bin/env python3
"""PyTorch peer for bench/sinkhorn.bench.ts: dense log-domain Sinkhorn on the CPU, the way it is
usually written in PyTorch (e.g. POT's / GeomLoss's tensorised backends): the cost matrix
C = ||x_i - y_j||^2 materialised once, then a fixed number of iterations of

    f = -eps * logsumexp((g[None, :] - C) / eps + log_b[None, :], dim=1)
    g = -eps * logsumexp((f[:, None] - C) / eps + log_a[:, None], dim=0)

Reads one JSON case on stdin: {"threads", "n", "m", "d", "iters", "eps", "xfile", "yfile"}: the
point clouds as raw float32 files (row-major n x d and m x d, written by the bench so that both
sides solve the same problem); without xfile/yfile, random ones ("seed", "dtype").
Prints one JSON line: {"seconds": time of the `iters` iterations (after one untimed warm-up
iteration), "cost_seconds": time to build C, "value": <f, a> + <g, b>, "base_rss", "peak_rss"
(bytes; getrusage ru_maxrss of this fresh process: after the inputs x, y exist, and at the end),
"torch": version, "threads": n}. One case per process, so ru_maxrss is this case's own peak.
Run with /usr/bin/python3 so Debian's python3-torch is used."""
import json
import resource
import sys
import time

import torch


def maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main():
    c = json.loads(sys.stdin.read())
    torch.set_num_threads(int(c["threads"]))
    dtype = torch.float64 if c.get("dtype") == "float64" else torch.float32
    n, m, d, iters, eps = int(c["n"]), int(c["m"]), int(c["d"]), int(c["iters"]), float(c["eps"])
    if "xfile" in c:
        x = torch.from_file(c["xfile"], size=n * d, dtype=torch.float32).reshape(n, d).to(dtype)
        y = torch.from_file(c["yfile"], size=m * d, dtype=torch.float32).reshape(m, d).to(dtype)
    else:
        g0 = torch.Generator().manual_seed(int(c.get("seed", 0)))
        x = torch.randn(n, d, generator=g0, dtype=dtype)
        y = torch.randn(m, d, generator=g0, dtype=dtype)
    a = torch.full((n,), 1.0 / n, dtype=dtype)
    b = torch.full((m,), 1.0 / m, dtype=dtype)
    log_a, log_b = a.log(), b.log()
    base = maxrss_bytes()
    with torch.no_grad():
        t0 = time.perf_counter()
        C = torch.cdist(x, y) ** 2
        cost_seconds = time.perf_counter() - t0
        f = torch.zeros(n, dtype=dtype)
        g = torch.zeros(m, dtype=dtype)

        def step(f, g):
            f = -eps * torch.logsumexp((g[None, :] - C) / eps + log_b[None, :], dim=1)
            g = -eps * torch.logsumexp((f[:, None] - C) / eps + log_a[:, None], dim=0)
            return f, g

        f, g = step(f, g)  # warm-up
        f.zero_()
        g.zero_()
        t0 = time.perf_counter()
        for _ in range(iters):
            f, g = step(f, g)
        seconds = time.perf_counter() - t0
        value = float((f * a).sum() + (g * b).sum())
    print(json.dumps({
        "seconds": seconds,
        "cost_seconds": cost_seconds,
        "value": value,
        "base_rss": base,
        "peak_rss": maxrss_bytes(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
