#!/usr/bin/env python3
"""PyTorch peer for bench/train_step.bench.ts: one CLIP training step (forward, backward,
AdamW step) of a small ViT image tower and a small causal text tower, the same sizes as the
tessera side, in eager mode, float32, on the CPU.

Reads a JSON config on stdin:
  {"threads", "batch", "image", "patch", "channels", "width", "layers", "heads", "out_dim",
   "context", "vocab", "warmup", "steps", "samples"}
and prints {"steps_per_s": best, "samples": [...], "torch": version, "threads": n}.
Each sample times `steps` back-to-back steps after `warmup` untimed ones.

The modules are the ones OpenCLIP builds these towers from: Conv2d patch embedding (kernel =
stride = patch, no bias), class token and learned position embedding, pre-LN residual blocks
with nn.MultiheadAttention (batch_first) and an MLP (Linear, exact-erf GELU, Linear), ln_post /
ln_final, projections without bias; the text tower pools at the argmax of the token ids (EOT);
the loss is OpenCLIP's ClipLoss (L2-normalised features, exp(logit_scale), mean of the two
cross-entropies). Run with /usr/bin/python3 so Debian's python3-torch is used."""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x, attn_mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Vision(nn.Module):
    def __init__(self, c):
        super().__init__()
        w, p = c["width"], c["patch"]
        n = (c["image"] // p) ** 2
        scale = w ** -0.5
        self.conv1 = nn.Conv2d(c["channels"], w, kernel_size=p, stride=p, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(n + 1, w))
        self.ln_pre = nn.LayerNorm(w)
        self.blocks = nn.ModuleList([Block(w, c["heads"]) for _ in range(c["layers"])])
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(scale * torch.randn(w, c["out_dim"]))

    def forward(self, images):
        x = self.conv1(images)  # [B, w, gh, gw]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, N, w]
        cls = self.class_embedding.reshape(1, 1, -1).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x)
        for b in self.blocks:
            x = b(x)
        x = self.ln_post(x)
        return x[:, 0] @ self.proj


class Text(nn.Module):
    def __init__(self, c):
        super().__init__()
        w, L = c["width"], c["context"]
        self.token_embedding = nn.Embedding(c["vocab"], w)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(L, w))
        self.blocks = nn.ModuleList([Block(w, c["heads"]) for _ in range(c["layers"])])
        self.ln_final = nn.LayerNorm(w)
        self.text_projection = nn.Parameter(w ** -0.5 * torch.randn(w, c["out_dim"]))
        self.register_buffer("attn_mask", torch.full((L, L), float("-inf")).triu_(1), persistent=False)

    def forward(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        for b in self.blocks:
            x = b(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0]), text.argmax(dim=-1)]
        return x @ self.text_projection


class Clip(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.visual = Vision(c)
        self.text = Text(c)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, images, text):
        img = F.normalize(self.visual(images), dim=-1)
        txt = F.normalize(self.text(text), dim=-1)
        logits = self.logit_scale.exp() * img @ txt.T
        labels = torch.arange(img.shape[0])
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def main():
    c = json.load(sys.stdin)
    torch.set_num_threads(int(c["threads"]))
    torch.manual_seed(0)
    model = Clip(c)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, foreach=bool(c.get("foreach", False)))
    B, L, V = c["batch"], c["context"], c["vocab"]
    images = torch.randn(B, c["channels"], c["image"], c["image"])
    text = torch.randint(1, V - 1, (B, L))
    eot = torch.randint(1, L, (B,))
    text[torch.arange(B), eot] = V - 1  # the EOT token has the largest id, as in CLIP's tokenizer

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(images, text)
        loss.backward()
        opt.step()
        return loss

    for _ in range(c["warmup"]):
        step()
    samples = []
    for _ in range(c["samples"]):
        t0 = time.perf_counter()
        for _ in range(c["steps"]):
            step()
        samples.append(c["steps"] / (time.perf_counter() - t0))
    print(json.dumps({"steps_per_s": max(samples), "samples": samples, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "loss": float(step().item())}))


if __name__ == "__main__":
    main()
