#!/usr/bin/env python3
"""PyTorch peer for bench/gpu/train_step_gpu.ts: the TinyClip training step of
bench/peers/torch_train_step.py (the same modules, imported from it) on CUDA, eager mode.

Reads a JSON config on stdin:
  {"batch", "image", "patch", "channels", "width", "layers", "heads", "out_dim", "context",
   "vocab", "warmup", "steps", "samples", "modes": ["tf32", "bf16"]}
and prints ONE JSON line:
  {"torch": version, "device": name,
   "rows": {mode: {"steps_per_s": best, "samples": [...], "loss": float} | {"error": text}}}

Modes (each with a fresh model, optimizer and seed):
  tf32  float32 parameters and activations, matmuls and convolutions on TF32 tensor cores
        (torch.backends.cuda.matmul.allow_tf32 = True, cudnn.allow_tf32 = True): what the
        tessera side runs (its float32 CUDA matmul uses TF32 by default).
  bf16  the same with torch.autocast("cuda", dtype=torch.bfloat16) around the forward pass
        (float32 master weights, AdamW in float32): a reference row only, tessera has no
        bfloat16 dtype yet.
Each sample times `steps` back-to-back steps (zero_grad(set_to_none=True), forward, backward,
AdamW step) after `warmup` untimed ones, closed by torch.cuda.synchronize().
Exits 3 with {"error": ...} when torch sees no CUDA device.

The CPU peer's Text.forward and Clip.forward build their index/label tensors with
torch.arange on the CPU; here they are made on the activations' device (otherwise identical).
"""
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    c = json.load(sys.stdin)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch_train_step import Text, Vision

    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch.cuda.is_available() is False", "torch": torch.__version__}))
        sys.exit(3)
    dev = torch.device("cuda")

    class TextGPU(Text):
        def forward(self, text):
            x = self.token_embedding(text) + self.positional_embedding
            for b in self.blocks:
                x = b(x, attn_mask=self.attn_mask)
            x = self.ln_final(x)
            x = x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)]
            return x @ self.text_projection

    class ClipGPU(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.visual = Vision(c)
            self.text = TextGPU(c)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

        def forward(self, images, text):
            img = F.normalize(self.visual(images), dim=-1)
            txt = F.normalize(self.text(text), dim=-1)
            logits = self.logit_scale.exp() * img @ txt.T
            labels = torch.arange(img.shape[0], device=img.device)
            return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    B, L, V = c["batch"], c["context"], c["vocab"]
    rows = {}
    for mode in c.get("modes", ["tf32", "bf16"]):
        try:
            torch.manual_seed(0)
            model = ClipGPU(c).to(dev)
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
            images = torch.randn(B, c["channels"], c["image"], c["image"], device=dev)
            text = torch.randint(1, V - 1, (B, L), device=dev)
            eot = torch.randint(1, L, (B,), device=dev)
            text[torch.arange(B, device=dev), eot] = V - 1  # the EOT token has the largest id

            def step():
                opt.zero_grad(set_to_none=True)
                if mode == "bf16":
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        loss = model(images, text)
                else:
                    loss = model(images, text)
                loss.backward()
                opt.step()
                return loss

            first = float(step().item())
            for _ in range(c["warmup"]):
                step()
            torch.cuda.synchronize()
            samples = []
            for _ in range(c["samples"]):
                t0 = time.perf_counter()
                for _ in range(c["steps"]):
                    step()
                torch.cuda.synchronize()
                samples.append(c["steps"] / (time.perf_counter() - t0))
            rows[mode] = {"steps_per_s": max(samples), "samples": samples, "first_loss": first,
                          "peak_mib": torch.cuda.max_memory_allocated() / 2 ** 20}
            del model, opt, images, text
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        except Exception as e:  # report this mode and go on
            rows[mode] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "rows": rows}))


if __name__ == "__main__":
    main()
