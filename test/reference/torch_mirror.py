"""PyTorch mirrors of tessera's nn modules, for the model parity and round-trip checks
(make_model_reference.py, check_checkpoint_in_torch.py).

Every module here has EXACTLY the state-dict names, parameter order and math of its tessera
counterpart in lib/nn, so a tessera state dict loads with load_state_dict(strict=True) and the
outputs agree to float32 rounding:

  TransformerBlock   ln_1, attn (in_proj fused q;k;v, out_proj), ln_2, mlp (fc1, fc2): pre-LN,
                     x + attn(ln_1(x)), then y + mlp(ln_2(y)); attention scores (q * hd^-0.5) k^T,
                     causal = key j blocked for query i when j > i; exact (erf) GELU;
                     LayerNorm eps 1e-5; MLP hidden = round(mlp_ratio * dim).
  Transformer        blocks.<i>
  VisionTransformer  class_embedding, positional_embedding, proj, patch_embed (Linear over
                     (c, ky, kx)-ordered patches, no bias), ln_pre, transformer, ln_post;
                     class-token pooling, pooled @ proj.
  TextTransformer    positional_embedding, text_projection, token_embedding, transformer (causal),
                     ln_final; pooling at the given EOT index, pooled @ text_projection.
  Clip               vit, text, logit_scale (0-d) — the wrapper the tests build in tessera.

Also: clip_loss (lib/losses/clip.ts), should_decay / decay_groups (lib/optim/param_groups.ts),
and a small safetensors reader/writer (the `safetensors` package is not installed here).
"""
import json
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-5  # tessera's LayerNorm / TransformerBlock default (torch's too)


# --------------------------------------------------------------------------------------------
# modules


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU, as tessera's 'gelu'


class MultiHeadAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        assert dim % heads == 0
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, causal=False):
        b, l, d = x.shape
        h, hd = self.heads, self.head_dim
        qkv = self.in_proj(x).reshape(b, l, 3, h, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q * (1.0 / math.sqrt(hd))) @ k.transpose(-2, -1)
        if causal:
            blocked = torch.triu(torch.ones(l, l, dtype=torch.bool), diagonal=1)
            scores = scores.masked_fill(blocked, float("-inf"))
        o = scores.softmax(-1) @ v
        return self.out_proj(o.permute(0, 2, 1, 3).reshape(b, l, d))


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = MultiHeadAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim, eps=LN_EPS)
        # JS Math.round(x) = floor(x + 0.5)
        self.mlp = MLP(dim, int(math.floor(mlp_ratio * dim + 0.5)))

    def forward(self, x, causal=False):
        y = x + self.attn(self.ln_1(x), causal=causal)
        return y + self.mlp(self.ln_2(y))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, mlp_ratio=4.0):
        super().__init__()
        self.blocks = nn.ModuleList([TransformerBlock(width, heads, mlp_ratio) for _ in range(layers)])

    def forward(self, x, causal=False):
        for blk in self.blocks:
            x = blk(x, causal=causal)
        return x


class VisionTransformer(nn.Module):
    """cfg: imageSize, patchSize, channels, width, layers, heads, mlpRatio, outputDim (tessera's
    VisionTransformerConfig; learned positions, class-token pooling, no patch bias)."""

    def __init__(self, cfg):
        super().__init__()
        size, p, c, w = cfg["imageSize"], cfg["patchSize"], cfg.get("channels", 3), cfg["width"]
        assert size % p == 0
        self.p, self.c, self.g, self.width = p, c, size // p, w
        n = self.g * self.g
        # registration order as tessera's: class_embedding, positional_embedding, proj, children
        self.class_embedding = nn.Parameter(torch.zeros(w))
        self.positional_embedding = nn.Parameter(torch.zeros(1 + n, w))
        self.proj = nn.Parameter(torch.zeros(w, cfg["outputDim"]))
        self.patch_embed = nn.Linear(c * p * p, w, bias=False)
        self.ln_pre = nn.LayerNorm(w, eps=LN_EPS)
        self.transformer = Transformer(w, cfg["layers"], cfg["heads"], cfg.get("mlpRatio", 4.0))
        self.ln_post = nn.LayerNorm(w, eps=LN_EPS)

    def patchify(self, images):
        b = images.shape[0]
        g, p, c = self.g, self.p, self.c
        return images.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * p * p)

    def forward(self, images):
        b, w = images.shape[0], self.width
        x = self.patch_embed(self.patchify(images))
        cls = self.class_embedding.reshape(1, 1, w).expand(b, 1, w)
        x = torch.cat([cls, x], 1) + self.positional_embedding
        x = self.ln_post(self.transformer(self.ln_pre(x)))
        return x[:, 0] @ self.proj, x


class TextTransformer(nn.Module):
    """cfg: vocabSize, contextLength, width, layers, heads, mlpRatio, outputDim (causal, EOT pool)."""

    def __init__(self, cfg):
        super().__init__()
        w = cfg["width"]
        self.positional_embedding = nn.Parameter(torch.zeros(cfg["contextLength"], w))
        self.text_projection = nn.Parameter(torch.zeros(w, cfg["outputDim"]))
        self.token_embedding = nn.Embedding(cfg["vocabSize"], w)
        self.transformer = Transformer(w, cfg["layers"], cfg["heads"], cfg.get("mlpRatio", 4.0))
        self.ln_final = nn.LayerNorm(w, eps=LN_EPS)

    def forward(self, tokens, eot):
        b, l = tokens.shape
        x = self.token_embedding(tokens.long()) + self.positional_embedding[:l]
        x = self.ln_final(self.transformer(x, causal=True))
        pooled = x[torch.arange(b), eot.long()]
        return pooled @ self.text_projection, x


class Clip(nn.Module):
    """The two towers and the learnable log temperature, as the tests' tessera wrapper."""

    def __init__(self, vit_cfg, text_cfg):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.vit = VisionTransformer(vit_cfg)
        self.text = TextTransformer(text_cfg)

    def forward(self, images, tokens, eot):
        vp, vt = self.vit(images)
        tp, tt = self.text(tokens, eot)
        return {"vit.pooled": vp, "vit.tokens": vt, "text.pooled": tp, "text.tokens": tt,
                "clip_loss": clip_loss(vp, tp, self.logit_scale)}


def clip_loss(image, text, logit_scale):
    """lib/losses/clip.ts: normalise, exp(logit_scale) * img @ txt^T, mean of the two CEs."""
    img = F.normalize(image, dim=-1)
    txt = F.normalize(text, dim=-1)
    logits = (img @ txt.T) * logit_scale.exp()
    labels = torch.arange(image.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) * 0.5


def should_decay(name, p):
    """lib/optim/param_groups.ts shouldDecay (OpenCLIP's rule), default options."""
    if p.ndim < 2:
        return False
    return not any(s in name for s in ("bn", "ln", "bias", "logit_scale"))


def decay_groups(model, weight_decay):
    """lib/optim/param_groups.ts decayGroups: [no_decay (wd 0), decay], named_parameters order."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if should_decay(n, p) else no_decay).append((n, p))
    return no_decay, decay


# --------------------------------------------------------------------------------------------
# safetensors (enough of the format for these files: F32, F64, I32)

_DTYPES = {torch.float32: ("F32", 4), torch.float64: ("F64", 8), torch.int32: ("I32", 4)}
_FROM = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32}


def save_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> tensor (F32/F64/I32, any shape incl. 0-d); metadata: str -> str."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    # descending alignment then name, as the reference writer (and tessera's) orders them
    order = sorted(tensors, key=lambda n: (-_DTYPES[tensors[n].dtype][1], n))
    for name in order:
        t = tensors[name].detach().contiguous().cpu()
        code, _ = _DTYPES[t.dtype]
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)


def load_safetensors(path):
    """-> (dict name -> tensor, metadata dict). BF16 entries are widened to float32."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    data = buf[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        shape = e["shape"]
        if e["dtype"] == "BF16":
            bits = torch.frombuffer(bytearray(data[b:end]), dtype=torch.int16).to(torch.int32) & 0xFFFF
            t = (bits << 16).view(torch.float32)
        elif e["dtype"] in _FROM:
            t = torch.frombuffer(bytearray(data[b:end]), dtype=_FROM[e["dtype"]]) if end > b else torch.zeros(0, dtype=_FROM[e["dtype"]])
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {e['dtype']}")
        out[name] = t.reshape(shape).clone()
    return out, metadata


def rel_err(a, b):
    """max|a - b| / max(max|b|, tiny), in float64."""
    a, b = a.detach().double(), b.detach().double()
    den = max(b.abs().max().item() if b.numel() else 0.0, 1e-30)
    return ((a - b).abs().max().item() if a.numel() else 0.0) / den
