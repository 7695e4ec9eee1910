// Batched image augmentations on contiguous float32 [N, C, H, W] images (C = 1 or 3, values in
// [0, 1]), the data side of contrastive training (lib/data/augment.ts). Every random choice is
// made in TypeScript and arrives as a small per-image parameter tensor, so each kernel is a pure
// function of its inputs (deterministic for any thread count, and a CUDA twin can take the very
// same parameters). Images are independent: every kernel is parallel over the batch.
//
//   augment_resized_crop (x [N,C,H,W], boxes [N,4], out [N,C,OH,OW])
//       boxes row = (top, left, height, width) in pixels, inside the image. Bilinear resampling
//       with half-pixel centres, edges clamped to the box (torch.nn.functional.interpolate,
//       mode 'bilinear', align_corners=False, no antialias, applied to the cropped image).
//   augment_color_jitter (x [N,C,H,W], factors [N,4], out [N,C,H,W])
//       factors row = (brightness, contrast, saturation, hue), applied in that fixed order with
//       torchvision semantics; a factor equal to its identity (1, 1, 1, 0) is skipped exactly.
//       Saturation and hue leave 1-channel images unchanged.
//   augment_grayscale (x [N,C,H,W], mask [N], out [N,C,H,W])
//       where mask != 0: every channel = 0.2989 R + 0.587 G + 0.114 B (C = 3); else a copy.
//   augment_hflip (x [N,C,H,W], mask [N], out [N,C,H,W])
//       where mask != 0: out[..., w] = x[..., W - 1 - w]; else a copy.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
void augment_resized_crop(OpCall& c);
void augment_color_jitter(OpCall& c);
void augment_grayscale(OpCall& c);
void augment_hflip(OpCall& c);
}  // namespace tessera::cpu
