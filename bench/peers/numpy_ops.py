#!/usr/bin/env python3
"""Peer timings for tessera's CPU benchmarks: numpy (Debian's python3-numpy, which calls
OpenBLAS for matmul). Reads a JSON list of cases on stdin, prints a JSON object
{id: median seconds} on stdout. Each case: {"id", "op", "shapes": [[...], ...], "dtype",
"axis"?, "reps"?}. Run with /usr/bin/python3 so Debian's numpy + libopenblas0 is used."""
import json
import sys
import time

import numpy as np


def make(shape, dtype, rng):
    return rng.standard_normal(shape).astype(dtype)


def runner(case, rng):
    op = case["op"]
    dt = np.float32 if case.get("dtype", "float32") == "float32" else np.float64
    xs = [make(s, dt, rng) for s in case["shapes"]]
    axis = case.get("axis")
    if op == "matmul":
        a, b = xs
        out = np.empty((a.shape[0], b.shape[1]), dtype=dt)
        return lambda: np.matmul(a, b, out=out)
    if op in ("add", "mul", "sub", "div"):
        a, b = xs
        out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=dt)
        fn = {"add": np.add, "mul": np.multiply, "sub": np.subtract, "div": np.divide}[op]
        return lambda: fn(a, b, out=out)
    if op in ("exp", "tanh", "log", "sqrt"):
        (a,) = xs
        a = np.abs(a) + 0.1 if op in ("log", "sqrt") else a
        out = np.empty_like(a)
        fn = getattr(np, op)
        return lambda: fn(a, out=out)
    if op == "relu":
        (a,) = xs
        out = np.empty_like(a)
        return lambda: np.maximum(a, 0, out=out)
    if op in ("sum", "mean", "max"):
        (a,) = xs
        fn = {"sum": np.sum, "mean": np.mean, "max": np.max}[op]
        return lambda: fn(a, axis=axis)
    if op == "softmax":
        (a,) = xs

        def softmax():
            m = a.max(axis=-1, keepdims=True)
            e = np.exp(a - m)
            return e / e.sum(axis=-1, keepdims=True)

        return softmax
    if op == "transpose_copy":
        (a,) = xs
        return lambda: np.ascontiguousarray(a.T)
    raise ValueError(f"unknown op {op}")


def median_time(fn, reps, min_time=0.2):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) > 10000:
            break
    times.sort()
    return times[len(times) // 2]


def main():
    cases = json.load(sys.stdin)
    rng = np.random.default_rng(0)
    out = {}
    for case in cases:
        out[case["id"]] = median_time(runner(case, rng), case.get("reps", 5))
    blas = ""
    try:  # numpy >= 1.25 describes its BLAS; older versions (Debian 12's 1.24) do not
        config = np.show_config(mode="dicts")
        dep = config["Build Dependencies"]["blas"]
        blas = (dep["name"] + " " + dep.get("version", "")).strip()
    except Exception:
        try:
            import numpy.core._multiarray_umath  # noqa: F401
            blas = "openblas" if "openblas" in str(np.__config__.get_info("blas_opt_info")) else ""
        except Exception:
            pass
    json.dump({"times": out, "numpy": np.__version__, "blas": blas}, sys.stdout)


if __name__ == "__main__":
    main()
