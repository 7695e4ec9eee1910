// Batched augmentation kernels (see augment.h for the contract of each op).
//
// Why this shape: an augmentation batch is many small independent images with per-image
// parameters, so each kernel is one parallel_for over the batch and a plain loop over one
// image's pixels (a 3x32x32 image is 12 KiB: it stays in L1 while its passes run). All
// parameters are validated before the parallel region, so nothing can throw inside it. The
// arithmetic is float32 per pixel (the images are float32 and every op ends with a clamp to
// [0, 1]), with the one reduction (the contrast mean) accumulated in double. The colour passes
// are separate `omp simd` loops over the planes of one image; the hue rotation is written
// branch-free (selects, no std::floor/std::min references) so GCC vectorises it: the table
// form of HSV -> RGB ran ~40x slower.
#include "cpu/augment.h"

#include <cmath>
#include <vector>

#include "cpu/parallel.h"

namespace tessera::cpu {

namespace {

constexpr float kLumaR = 0.2989f, kLumaG = 0.587f, kLumaB = 0.114f;  // torchvision's ITU-R 601-2 weights

struct Images {
  const float* x;
  float* out;
  int64_t n, c, h, w;
};

// x [N, C, H, W] float32 contiguous with C in {1, 3}; out float32 contiguous with shape
// [N, C, out_h, out_w]; params float32 contiguous with `per_image` values per image.
Images check_images(OpCall& c, int64_t out_h, int64_t out_w, int64_t per_image, const char* params_name) {
  c.expect_count(3, c.scalars.size());
  c.expect_dtype(0, DType::F32, "x");
  c.expect_ndim(0, 4, "x (as [N, C, H, W])");
  c.expect_contiguous(0, "x");
  const TensorRef& x = c.t(0);
  TS_CHECK(x.shape[1] == 1 || x.shape[1] == 3, c.op, ": x must have 1 or 3 channels, got ", x.describe());
  const int64_t n = x.shape[0];
  c.expect_dtype(1, DType::F32, params_name);
  c.expect_contiguous(1, params_name);
  c.expect_numel(1, n * per_image, params_name);
  TS_CHECK(c.t(1).ndim >= 1 && c.t(1).shape[0] == n, c.op, ": ", params_name, " must have one row per image (",
           n, "), got ", c.t(1).describe());
  if (out_h < 0) out_h = x.shape[2];
  if (out_w < 0) out_w = x.shape[3];
  c.expect_dtype(2, DType::F32, "out");
  c.expect_contiguous(2, "out");
  const TensorRef& o = c.t(2);
  TS_CHECK(o.ndim == 4 && o.shape[0] == n && o.shape[1] == x.shape[1] && o.shape[2] == out_h && o.shape[3] == out_w,
           c.op, ": out must have shape [", n, ", ", x.shape[1], ", ", out_h, ", ", out_w, "], got ", o.describe());
  return {x.data<float>(), o.data<float>(), n, x.shape[1], x.shape[2], x.shape[3]};
}

int64_t image_grain(int64_t elems_per_image) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, elems_per_image));
}

inline float clamp01(float v) { return v < 0.f ? 0.f : (v > 1.f ? 1.f : v); }

// Hue rotation of one RGB plane triple by `shift` turns: torchvision's _rgb2hsv, then the hue
// moved mod 1, then HSV -> RGB in the branch-free form c(n) = v - v s clamp(min(k, 4 - k), 0, 1),
// k = (n + 6 h) mod 6, n = 5, 3, 1 for R, G, B (the same values as torchvision's six-sector
// table up to rounding), so the pixel loop vectorises.
// Value-returning min/max (std::min/max return references, which keeps GCC from vectorising).
inline float fmax3(float a, float b, float c) { const float m = a > b ? a : b; return m > c ? m : c; }
inline float fmin3(float a, float b, float c) { const float m = a < b ? a : b; return m < c ? m : c; }
inline float ramp(float k) {  // clamp(min(k, 4 - k), 0, 1)
  const float m = k < 4.f - k ? k : 4.f - k;
  return m < 0.f ? 0.f : (m > 1.f ? 1.f : m);
}

void hue_shift_plane(float* r, float* g, float* b, int64_t plane, float shift) {
  shift -= std::floor(shift);  // in [0, 1): below, h > 0 and truncation is floor (std::floor would block vectorisation)
#pragma omp simd
  for (int64_t p = 0; p < plane; ++p) {
    const float R = r[p], G = g[p], B = b[p];
    const float maxc = fmax3(R, G, B);
    const float minc = fmin3(R, G, B);
    const float cr = maxc - minc;  // 0 exactly when maxc == minc
    const float s = cr / (cr == 0.f ? 1.f : maxc);
    const float inv = 1.f / (cr == 0.f ? 1.f : cr);
    const float rc = (maxc - R) * inv, gc = (maxc - G) * inv, bc = (maxc - B) * inv;
    const float hr = bc - gc, hg = 2.f + rc - bc, hb = 4.f + gc - rc;
    const float h0 = maxc == R ? hr : (maxc == G ? hg : hb);
    float h = h0 / 6.f + 1.f + shift;  // torchvision: fmod(h / 6 + 1, 1), then (h + shift) mod 1
    h -= (float)(int32_t)h;
    const float h6 = h * 6.f, vs = maxc * s;
    float k = 5.f + h6;
    k -= k >= 6.f ? 6.f : 0.f;
    r[p] = maxc - vs * ramp(k);
    k = 3.f + h6;
    k -= k >= 6.f ? 6.f : 0.f;
    g[p] = maxc - vs * ramp(k);
    k = 1.f + h6;
    k -= k >= 6.f ? 6.f : 0.f;
    b[p] = maxc - vs * ramp(k);
  }
}

}  // namespace

void augment_resized_crop(OpCall& c) {
  c.expect_count(3, 0);
  const TensorRef& o = c.t(2);
  TS_CHECK(o.ndim == 4, c.op, ": out must have 4 dimensions, got ", o.describe());
  const Images im = check_images(c, o.shape[2], o.shape[3], 4, "boxes");
  const int64_t oh = o.shape[2], ow = o.shape[3];
  const float* boxes = c.t(1).data<float>();
  for (int64_t i = 0; i < im.n; ++i) {
    const double top = boxes[4 * i], left = boxes[4 * i + 1], bh = boxes[4 * i + 2], bw = boxes[4 * i + 3];
    TS_CHECK(std::isfinite(top) && std::isfinite(left) && std::isfinite(bh) && std::isfinite(bw) && top >= 0 &&
                 left >= 0 && bh >= 1 && bw >= 1 && top + bh <= (double)im.h && left + bw <= (double)im.w,
             c.op, ": box ", i, " (top ", top, ", left ", left, ", height ", bh, ", width ", bw,
             ") must have height and width >= 1 and lie inside the ", im.h, "x", im.w, " image");
  }
  const int64_t plane_in = im.h * im.w, plane_out = oh * ow;
  parallel_for(im.n, image_grain(im.c * plane_out), [&](int64_t i0, int64_t i1) {
    std::vector<int64_t> x0(ow), x1(ow);
    std::vector<float> wx(ow);
    for (int64_t i = i0; i < i1; ++i) {
      const double top = boxes[4 * i], left = boxes[4 * i + 1], bh = boxes[4 * i + 2], bw = boxes[4 * i + 3];
      const double sy = bh / (double)oh, sx = bw / (double)ow;
      for (int64_t j = 0; j < ow; ++j) {
        const double local = std::min(std::max((j + 0.5) * sx - 0.5, 0.0), bw - 1.0);
        const double xs = left + local;
        const int64_t a = std::min<int64_t>((int64_t)std::floor(xs), im.w - 1);
        x0[j] = a;
        x1[j] = std::min<int64_t>(a + 1, im.w - 1);
        wx[j] = (float)(xs - (double)a);
      }
      for (int64_t yy = 0; yy < oh; ++yy) {
        const double local = std::min(std::max((yy + 0.5) * sy - 0.5, 0.0), bh - 1.0);
        const double ys = top + local;
        const int64_t y0 = std::min<int64_t>((int64_t)std::floor(ys), im.h - 1);
        const int64_t y1 = std::min<int64_t>(y0 + 1, im.h - 1);
        const float wy = (float)(ys - (double)y0);
        for (int64_t ch = 0; ch < im.c; ++ch) {
          const float* src = im.x + (i * im.c + ch) * plane_in;
          const float* r0 = src + y0 * im.w;
          const float* r1 = src + y1 * im.w;
          float* dst = im.out + (i * im.c + ch) * plane_out + yy * ow;
          for (int64_t j = 0; j < ow; ++j) {
            const float top_v = r0[x0[j]] + wx[j] * (r0[x1[j]] - r0[x0[j]]);
            const float bot_v = r1[x0[j]] + wx[j] * (r1[x1[j]] - r1[x0[j]]);
            dst[j] = top_v + wy * (bot_v - top_v);
          }
        }
      }
    }
  });
}

void augment_color_jitter(OpCall& c) {
  c.expect_count(3, 0);
  const Images im = check_images(c, -1, -1, 4, "factors");
  const float* fac = c.t(1).data<float>();
  for (int64_t i = 0; i < im.n; ++i) {
    const float* f = fac + 4 * i;
    TS_CHECK(std::isfinite(f[0]) && std::isfinite(f[1]) && std::isfinite(f[2]) && std::isfinite(f[3]) &&
                 f[0] >= 0 && f[1] >= 0 && f[2] >= 0,
             c.op, ": factors of image ", i, " (brightness ", f[0], ", contrast ", f[1], ", saturation ", f[2],
             ", hue ", f[3], ") must be finite, with brightness, contrast and saturation >= 0");
  }
  const int64_t plane = im.h * im.w;
  parallel_for(im.n, image_grain(im.c * plane), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float bf = fac[4 * i], cf = fac[4 * i + 1], sf = fac[4 * i + 2], hf = fac[4 * i + 3];
      const bool rgb = im.c == 3;
      const bool do_c = cf != 1.f, do_s = rgb && sf != 1.f, do_h = rgb && hf != 0.f;
      const float* src = im.x + i * im.c * plane;
      float* dst = im.out + i * im.c * plane;
      // Pass 1: brightness, and the gray mean of its result for the contrast.
      double sum = 0;
      if (rgb) {
        for (int64_t p = 0; p < plane; ++p) {
          float r = src[p], g = src[plane + p], b = src[2 * plane + p];
          if (bf != 1.f) {
            r = clamp01(r * bf);
            g = clamp01(g * bf);
            b = clamp01(b * bf);
          }
          dst[p] = r;
          dst[plane + p] = g;
          dst[2 * plane + p] = b;
          if (do_c) sum += (double)(kLumaR * r + kLumaG * g + kLumaB * b);
        }
      } else {
        for (int64_t p = 0; p < plane; ++p) {
          const float v = bf != 1.f ? clamp01(src[p] * bf) : src[p];
          dst[p] = v;
          sum += (double)v;
        }
      }
      if (!do_c && !do_s && !do_h) continue;
      const float mean = plane > 0 ? (float)(sum / (double)plane) : 0.f;
      const float cmean = (1.f - cf) * mean;
      if (!rgb) {
        for (int64_t p = 0; p < plane; ++p) dst[p] = clamp01(cf * dst[p] + cmean);
        continue;
      }
      // Pass 2: contrast, saturation, hue, each a vectorised loop over the (L1-resident) planes.
      float* R = dst;
      float* G = dst + plane;
      float* B = dst + 2 * plane;
      if (do_c) {
#pragma omp simd
        for (int64_t p = 0; p < plane; ++p) {
          R[p] = clamp01(cf * R[p] + cmean);
          G[p] = clamp01(cf * G[p] + cmean);
          B[p] = clamp01(cf * B[p] + cmean);
        }
      }
      if (do_s) {
#pragma omp simd
        for (int64_t p = 0; p < plane; ++p) {
          const float gray = (1.f - sf) * (kLumaR * R[p] + kLumaG * G[p] + kLumaB * B[p]);
          R[p] = clamp01(sf * R[p] + gray);
          G[p] = clamp01(sf * G[p] + gray);
          B[p] = clamp01(sf * B[p] + gray);
        }
      }
      if (do_h) hue_shift_plane(R, G, B, plane, hf);
    }
  });
}

void augment_grayscale(OpCall& c) {
  c.expect_count(3, 0);
  const Images im = check_images(c, -1, -1, 1, "mask");
  const float* mask = c.t(1).data<float>();
  const int64_t plane = im.h * im.w;
  parallel_for(im.n, image_grain(im.c * plane), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* src = im.x + i * im.c * plane;
      float* dst = im.out + i * im.c * plane;
      if (mask[i] == 0.f || im.c == 1) {
        std::copy(src, src + im.c * plane, dst);
        continue;
      }
      for (int64_t p = 0; p < plane; ++p) {
        const float gray = kLumaR * src[p] + kLumaG * src[plane + p] + kLumaB * src[2 * plane + p];
        dst[p] = gray;
        dst[plane + p] = gray;
        dst[2 * plane + p] = gray;
      }
    }
  });
}

void augment_hflip(OpCall& c) {
  c.expect_count(3, 0);
  const Images im = check_images(c, -1, -1, 1, "mask");
  const float* mask = c.t(1).data<float>();
  const int64_t plane = im.h * im.w;
  parallel_for(im.n, image_grain(im.c * plane), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* src = im.x + i * im.c * plane;
      float* dst = im.out + i * im.c * plane;
      if (mask[i] == 0.f) {
        std::copy(src, src + im.c * plane, dst);
        continue;
      }
      for (int64_t row = 0; row < im.c * im.h; ++row) {
        const float* s = src + row * im.w;
        float* d = dst + row * im.w;
        for (int64_t j = 0; j < im.w; ++j) d[j] = s[im.w - 1 - j];
      }
    }
  });
}

}  // namespace tessera::cpu
