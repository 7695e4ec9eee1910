#!/usr/bin/python3
"""OpenBLAS reference timings for bench/matmul_native.js: square float32 C = A @ B through numpy.

Run with the system interpreter (/usr/bin/python3: Debian's python3-numpy on libopenblas0), with
the thread count in the environment, e.g.
    OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 /usr/bin/python3 bench/matmul_openblas.py --sizes 512,1024
Prints one JSON object: the OpenBLAS build and core it runs, and per size the median and best time
of `--samples` samples (each sample times enough back-to-back calls to last ~--min-ms), as GFLOP/s.
np.matmul(a, b, out=c) writes into a preallocated c, as the tessera op does. OPENBLAS_CORETYPE
(e.g. SkylakeX) forces one of the DYNAMIC_ARCH kernels instead of the auto-detected one.
"""
import argparse
import ctypes
import json
import os
import statistics
import time

import numpy as np


def openblas_info():
    info = {"numpy": np.__version__}
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            info["config"] = lib.openblas_get_config().decode()
            info["core"] = lib.openblas_get_corename().decode()
            info["threads"] = lib.openblas_get_num_threads()
            break
        except (OSError, AttributeError):
            continue
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="128,256,512,1024,2048")
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--min-ms", type=float, default=60.0)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        a = rng.standard_normal((n, n)).astype(args.dtype)
        b = rng.standard_normal((n, n)).astype(args.dtype)
        c = np.empty((n, n), dtype=args.dtype)
        flops = 2.0 * n * n * n
        for _ in range(2):  # warm-up: thread pool, page faults, caches
            np.matmul(a, b, out=c)
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        one = max(time.perf_counter() - t0, 1e-7)
        reps = max(1, int(args.min_ms / 1000.0 / one))
        times = []
        for _ in range(args.samples):
            t0 = time.perf_counter()
            for _ in range(reps):
                np.matmul(a, b, out=c)
            times.append((time.perf_counter() - t0) / reps)
        med, best = statistics.median(times), min(times)
        results.append({"n": n, "reps": reps, "median_s": med, "best_s": best,
                        "gflops_median": flops / med / 1e9, "gflops_best": flops / best / 1e9})
    print(json.dumps({"library": "openblas", "info": openblas_info(), "dtype": args.dtype,
                      "env_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "results": results}))


if __name__ == "__main__":
    main()
