#!/usr/bin/env python3
"""Round trip to PyTorch: load tessera-saved CLIP weights into the torch mirror modules
(test/reference/torch_mirror.py: same names, load_state_dict(strict=True)) and check that
PyTorch reproduces the outputs tessera computed with them.

usage: /usr/bin/python3 test/reference/check_checkpoint_in_torch.py WEIGHTS [IO]

WEIGHTS  a safetensors file from tessera: either saveSafetensors output holding the state dict
         under "model.<name>" (or unprefixed), or a saveCheckpoint file (format
         tessera-checkpoint/1; its "optim.*" tensors are ignored).
IO       a safetensors file with input.images, input.tokens (int32), input.eot (int32) and
         tessera's output.vit.pooled, output.vit.tokens, output.text.pooled, output.text.tokens,
         output.clip_loss; default: WEIGHTS itself.
The model config (JSON with "vit" and "text" as tessera's VisionTransformerConfig /
TextTransformerConfig) is the "config" metadata entry of IO or WEIGHTS, or "config" inside a
checkpoint's "extra".

Exit status: 0 all outputs agree (max|torch - tessera| / max|tessera| < 1e-4 each), 1 they do
not or the files/weights are wrong (the message says which), 3 torch is not installed (skip).
"""
import json
import os
import sys

TOL = 1e-4
OUTPUTS = ["vit.pooled", "vit.tokens", "text.pooled", "text.tokens", "clip_loss"]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def main(argv):
    if len(argv) not in (2, 3) or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 2 if len(argv) not in (2, 3) else 0
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any failure to import is "no torch here"
        print(f"SKIP: torch is not available to {sys.executable}: {e}")
        return 3
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_mirror as tm

    weights_path = argv[1]
    io_path = argv[2] if len(argv) == 3 else weights_path
    try:
        wt, wmeta = tm.load_safetensors(weights_path)
        io, iometa = (wt, wmeta) if io_path == weights_path else tm.load_safetensors(io_path)
    except Exception as e:  # noqa: BLE001
        fail(f"cannot read the safetensors files: {e}")

    config = None
    for meta in (iometa, wmeta):
        if "config" in meta:
            config = json.loads(meta["config"])
            break
    if config is None and wmeta.get("format") == "tessera-checkpoint/1":
        config = json.loads(wmeta.get("extra", "{}")).get("config")
    if not config or "vit" not in config or "text" not in config:
        fail(f"no model config (a JSON 'config' metadata entry with 'vit' and 'text') in {io_path} or {weights_path}")

    if wmeta.get("format") == "tessera-checkpoint/1" or any(k.startswith("model.") for k in wt):
        state = {k[len("model."):]: v for k, v in wt.items() if k.startswith("model.")}
    else:
        state = {k: v for k, v in wt.items() if not k.startswith(("input.", "output."))}

    model = tm.Clip(config["vit"], config["text"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        fail(f"the weights of {weights_path} do not load into the torch mirror with strict=True:\n{e}")
    model.eval()

    missing = [k for k in ["input.images", "input.tokens", "input.eot"] + [f"output.{o}" for o in OUTPUTS] if k not in io]
    if missing:
        fail(f"{io_path} lacks {', '.join(missing)}")
    with torch.no_grad():
        got = model(io["input.images"].float(), io["input.tokens"], io["input.eot"])

    worst, bad = 0.0, []
    print(f"PyTorch {torch.__version__} on tessera's weights ({len(state)} tensors from {weights_path}):")
    for o in OUTPUTS:
        ref = io[f"output.{o}"]
        if tuple(got[o].shape) != tuple(ref.shape):
            bad.append(f"{o}: shape {tuple(got[o].shape)} in torch, {tuple(ref.shape)} in tessera")
            continue
        err = tm.rel_err(got[o], ref)
        worst = max(worst, err) if err == err else float("nan")
        ok = err < TOL
        print(f"  {o:12s} rel err {err:.2e}  {'ok' if ok else 'MISMATCH'}")
        if not ok:
            bad.append(f"{o}: relative error {err:.3e} >= {TOL}")
    if bad:
        fail("PyTorch does not reproduce tessera's outputs: " + "; ".join(bad))
    print(f"OK: max relative error {worst:.2e} < {TOL}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
