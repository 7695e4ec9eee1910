#!/usr/bin/env python3
"""Writes test/reference/model_reference.safetensors: llm.c-style PyTorch parity data for
tessera's nn models, which test/nn/torch_parity.test.ts replays. Run it again with Debian's
python3-torch (/usr/bin/python3 test/reference/make_model_reference.py) to remake the file.

The models are the mirrors of test/reference/torch_mirror.py (tessera's exact state-dict names
and math), built from fixed random weights (torch.manual_seed; every parameter random, LayerNorm
gains and biases included), run in float32:

  - a lone TransformerBlock: forward on input.block_x, then the backward of
    sum(out * input.block_w): gradients of the input and of every parameter;
  - the CLIP pair (Clip: vit, text, logit_scale): both towers' pooled and token outputs, the CLIP
    loss, and the gradient of the loss for every parameter and for the images;
  - 10 steps of torch.optim.AdamW (float32, no-decay / decay groups as tessera's decayGroups
    makes them) on the CLIP loss of the same batch: the loss before the first step and after each
    step (11 values), and every parameter after the last step.

Tensor names:
  input.{block_x, block_w, images, tokens (int32), eot (int32)}
  init.block.<name>, init.clip.<name>           the weights (<name>: tessera state-dict names)
  out.block, out.{vit,text}.{pooled,tokens}, out.clip_loss (0-d)
  grad.block.x, grad.block.<name>, grad.clip.<name>, grad.clip.images
  adamw.losses [11], adamw.final.<name>
The string metadata "config" is JSON with every shared number (model configs, batch, AdamW
hyper-parameters, the decay / no-decay parameter names): the test builds its models from it.
"""
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mirror as tm  # noqa: E402

torch.set_default_dtype(torch.float32)
torch.manual_seed(20240607)

BLOCK = {"dim": 32, "heads": 4, "mlpRatio": 4, "batch": 2, "seq": 5}
VIT = {"imageSize": 14, "patchSize": 7, "channels": 3, "width": 32, "layers": 2, "heads": 4, "mlpRatio": 2, "outputDim": 16}
TEXT = {"vocabSize": 50, "contextLength": 8, "width": 32, "layers": 2, "heads": 4, "mlpRatio": 2, "outputDim": 16}
BATCH = 4
EOT = [7, 3, 5, 1]  # EOT position of each caption (the EOT id is the largest, as OpenCLIP's)
ADAMW = {"lr": 2e-4, "betas": [0.9, 0.999], "eps": 1e-8, "weightDecay": 0.1, "steps": 10}


def randomize(model):
    """Every parameter random (not the default init), at scales that keep activations O(1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                p.fill_(2.6592600345611572)  # log(1 / 0.07)
            elif re.search(r"ln_\w+\.weight$", name):
                p.copy_(1 + 0.1 * torch.randn(p.shape))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape))
            elif name.endswith("proj") or name.endswith("text_projection"):  # [width, out]
                p.copy_(torch.randn(p.shape) / p.shape[0] ** 0.5)
            else:  # Linear weights [out, in]
                p.copy_(torch.randn(p.shape) / p.shape[1] ** 0.5)


out = {}

# --- the lone block --------------------------------------------------------------------------
block = tm.TransformerBlock(BLOCK["dim"], BLOCK["heads"], BLOCK["mlpRatio"])
randomize(block)
for n, p in block.state_dict().items():
    out[f"init.block.{n}"] = p.clone()
x = torch.randn(BLOCK["batch"], BLOCK["seq"], BLOCK["dim"]).requires_grad_(True)
w = torch.randn(BLOCK["batch"], BLOCK["seq"], BLOCK["dim"])
y = block(x)
(y * w).sum().backward()
out["input.block_x"] = x.detach().clone()
out["input.block_w"] = w
out["out.block"] = y.detach().clone()
out["grad.block.x"] = x.grad.clone()
for n, p in block.named_parameters():
    out[f"grad.block.{n}"] = p.grad.clone()

# --- the CLIP pair ---------------------------------------------------------------------------
clip = tm.Clip(VIT, TEXT)
randomize(clip)
init_state = {n: p.clone() for n, p in clip.state_dict().items()}
for n, p in init_state.items():
    out[f"init.clip.{n}"] = p
images = torch.randn(BATCH, VIT["channels"], VIT["imageSize"], VIT["imageSize"]).requires_grad_(True)
L = TEXT["contextLength"]
tokens = torch.zeros(BATCH, L, dtype=torch.int32)
for r, e in enumerate(EOT):
    tokens[r, :e] = torch.randint(1, TEXT["vocabSize"] - 1, (e,), dtype=torch.int32)
    tokens[r, e] = TEXT["vocabSize"] - 1
eot = torch.tensor(EOT, dtype=torch.int32)
assert torch.equal(tokens.argmax(-1).to(torch.int32), eot)
res = clip(images, tokens, eot)
res["clip_loss"].backward()
out["input.images"] = images.detach().clone()
out["input.tokens"] = tokens
out["input.eot"] = eot
for k, v in res.items():
    out[f"out.{k}"] = v.detach().clone()
for n, p in clip.named_parameters():
    assert p.grad is not None, n
    out[f"grad.clip.{n}"] = p.grad.clone()
out["grad.clip.images"] = images.grad.clone()

# --- AdamW on the CLIP loss ------------------------------------------------------------------
model = tm.Clip(VIT, TEXT)
model.load_state_dict(init_state, strict=True)
no_decay, decay = tm.decay_groups(model, ADAMW["weightDecay"])
opt = torch.optim.AdamW(
    [{"params": [p for _, p in no_decay], "weight_decay": 0.0},
     {"params": [p for _, p in decay], "weight_decay": ADAMW["weightDecay"]}],
    lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]), eps=ADAMW["eps"], foreach=False)
losses = []
imgs = images.detach()
for step in range(ADAMW["steps"] + 1):
    opt.zero_grad()
    loss = model(imgs, tokens, eot)["clip_loss"]
    losses.append(loss.item())
    if step < ADAMW["steps"]:
        loss.backward()
        opt.step()
out["adamw.losses"] = torch.tensor(losses, dtype=torch.float32)
for n, p in model.state_dict().items():
    out[f"adamw.final.{n}"] = p.clone()

config = {
    "generator": "test/reference/make_model_reference.py",
    "torch": torch.__version__,
    "block": BLOCK,
    "vit": VIT,
    "text": TEXT,
    "batch": BATCH,
    "adamw": ADAMW,
    "noDecay": [n for n, _ in no_decay],
    "decay": [n for n, _ in decay],
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_reference.safetensors")
tm.save_safetensors(path, out, {"config": json.dumps(config)})
print(f"wrote {len(out)} tensors, {os.path.getsize(path)} bytes to {path} (torch {torch.__version__})")
print("losses:", " ".join(f"{v:.6f}" for v in losses))
