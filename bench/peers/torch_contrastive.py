#!/usr/bin/env python3
"""PyTorch peer for bench/contrastive.bench.ts: the CLIP loss, forward and backward, on the CPU,
float32, composed as everyone writes it:

    logits = logit_scale.exp() * a @ b.T
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    loss.backward()

(a, b [N, D] leaves with requires_grad, logit_scale a 0-d leaf; no normalisation, like tessera's
clipLossFused). Reads one JSON case on stdin: {"n", "d", "threads", "mode", "warmup", "reps",
"min_time"} and prints one JSON line.

mode "time": best and median seconds per forward+backward over `reps` samples (each sample runs
  back-to-back iterations for at least `min_time` seconds), after `warmup` untimed iterations.
mode "memory": the peak resident-set growth of ONE forward+backward in this fresh process: a
  helper thread reads the resident set (/proc/self/statm) every millisecond while the step runs
  (torch releases the GIL inside its ops), and the peak minus the resident set just before the
  step is reported (inputs already allocated and touched); ru_maxrss growth is reported too.
  torch's CPU allocator hands large blocks straight to malloc/free (no caching), so this is the
  step's real peak extra memory: the N x N logits, the transposed copy cross_entropy makes of
  logits.T, the gradients. (tracemalloc does not see torch's allocations.) One case per process.
Run with /usr/bin/python3 so Debian's python3-torch is used."""
import json
import resource
import os
import statistics
import sys
import threading
import time

import torch
import torch.nn.functional as F


def step(a, b, s, labels):
    logits = s.exp() * (a @ b.T)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    loss.backward()
    return loss


def main():
    cfg = json.loads(sys.stdin.read())
    n, d = cfg["n"], cfg["d"]
    torch.set_num_threads(cfg.get("threads", 1))
    torch.manual_seed(0)
    a = (torch.randn(n, d) / d ** 0.5).requires_grad_()
    b = (torch.randn(n, d) / d ** 0.5).requires_grad_()
    s = torch.tensor(2.659260036932778).requires_grad_()  # log(1 / 0.07)
    labels = torch.arange(n)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "n": n, "d": d}
    if cfg.get("mode") == "memory":
        page = os.sysconf("SC_PAGE_SIZE")

        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page

        peak = [0]
        done = threading.Event()

        def poll():
            while not done.is_set():
                peak[0] = max(peak[0], rss())
                time.sleep(0.001)

        before = rss()
        maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        poller = threading.Thread(target=poll)
        poller.start()
        loss = step(a, b, s, labels)
        done.set()
        poller.join()
        maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["peak_extra_bytes"] = max(peak[0], rss()) - before
        out["maxrss_growth_bytes"] = (maxrss1 - maxrss0) * 1024
        out["loss"] = loss.item()
    else:
        for _ in range(cfg.get("warmup", 1)):
            step(a, b, s, labels)
            a.grad = b.grad = s.grad = None
        samples = []
        for _ in range(cfg.get("reps", 5)):
            iters = 0
            t0 = time.perf_counter()
            while True:
                step(a, b, s, labels)
                a.grad = b.grad = s.grad = None
                iters += 1
                el = time.perf_counter() - t0
                if el >= cfg.get("min_time", 0.2):
                    break
            samples.append(el / iters)
        out["best"] = min(samples)
        out["median"] = statistics.median(samples)
        out["samples"] = samples
    print(json.dumps(out))


if __name__ == "__main__":
    main()
