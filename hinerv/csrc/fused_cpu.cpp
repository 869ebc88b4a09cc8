// Fused CPU kernels for training and decoding: LayerNorm (no affine), the exact erf GELU, bilinear
// up-sampling with the local-grid table, and the SSIM terms of the MS-SSIM training loss; with AVX-512, the
// ConvNeXt block's MLP (forward and backward), the depth-wise conv (forward and backward) and the RGB head.
//
// Built on first use by hinerv/fused.py (torch.utils.cpp_extension, -O3 -march=native); the PyTorch
// compositions in hinerv/model/layers.py and hinerv/metrics.py compute the same functions and are used
// where this cannot be built. All tensors are contiguous float32. A LayerNorm "row" is the last axis
// (channels-last activations, 4..128 channels); SSIM works on [N, C, H, W] planes.
//
// Each kernel is one pass over its data where the PyTorch composition takes several, which is what
// matters on a CPU for this network's narrow rows (tens of channels over 10^4..10^6 pixels) and for
// the loss's five blurred moment maps. Sums are reduced in a fixed order: results do not depend on the
// thread count.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kRowGrain = 1024;   // rows per parallel task
constexpr int64_t kElemGrain = 32768;  // elements per parallel task

void check_float_contiguous(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, ": expected a CPU tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat, name, ": expected float32, got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, ": expected a contiguous tensor");
}

// exp(x) for x <= 0 (larger x are not used): Cody-Waite reduction to r in [-ln2/2, ln2/2], the Cephes
// expf polynomial, and 2^n put into the exponent bits. About 1 ulp; branch- and call-free so the
// loops below vectorise. Inputs below -87 give exp(-87) ~ 1.6e-38 (still a normal float).
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);
}

// Phi(v), the standard normal CDF, by the Abramowitz-Stegun 7.1.26 erf (|error| <= 1.5e-7, the
// approximation PyTorch's vectorised CPU erf uses), given e = exp(-v^2 / 2), which it shares with the
// normal density phi(v) = e / sqrt(2 pi).
inline float normal_cdf(float v, float e) {
  const float z = std::fabs(v) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  float poly = 1.061405429f;
  poly = poly * t - 1.453152027f;
  poly = poly * t + 1.421413741f;
  poly = poly * t - 0.284496736f;
  poly = poly * t + 0.254829592f;
  poly = poly * t;
  const float erf_abs = 1.0f - poly * e;
  return 0.5f * (1.0f + std::copysign(erf_abs, v));
}

#if defined(__AVX512F__)
#include <immintrin.h>

// the lanes of a 16-float vector that hold the first min(left, 16) of the values left
inline __mmask16 first_lanes(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

// exp(-v^2 / 2) = 2^y, y = -v^2 log2(e) / 2: y = n + f with n an integer and |f| <= 1/2, 2^f by a degree-6
// polynomial fitted to it on [-1/2, 1/2] (relative error 1.6e-8 with these float coefficients)
inline __m512 exp_half_square16(__m512 v) {
  __m512 y = _mm512_mul_ps(_mm512_mul_ps(v, v), _mm512_set1_ps(-0.72134752044448170f));
  y = _mm512_max_ps(y, _mm512_set1_ps(-150.0f));  // 2^-150 is 0 in float; keeps f finite for huge |v|
  const __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(y, n);
  __m512 p = _mm512_set1_ps(1.5345810970757157e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3399930903688073e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618489071726799e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550328642129898e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.24022646248340607f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6931471824645996f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// normal_cdf on 16 lanes (e = exp(-v^2 / 2) from exp_half_square16), with 1 / (1 + p z) by a
// reciprocal estimate and one Newton step (relative error ~1e-8) instead of a division, which is most of
// the cost on CPUs with slow vector division.
inline __m512 normal_cdf16(__m512 v, __m512 e) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  // 1 + p z with z = |v| / sqrt(2)
  const __m512 den = _mm512_fmadd_ps(_mm512_andnot_ps(sign, v), _mm512_set1_ps(0.3275911f * 0.70710678118654752f),
                                     _mm512_set1_ps(1.0f));
  __m512 t = _mm512_rcp14_ps(den);
  t = _mm512_mul_ps(t, _mm512_fnmadd_ps(den, t, _mm512_set1_ps(2.0f)));
  __m512 poly = _mm512_set1_ps(1.061405429f);
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
  poly = _mm512_mul_ps(poly, t);
  const __m512 erf_abs = _mm512_fnmadd_ps(poly, e, _mm512_set1_ps(1.0f));
  const __m512 erf = _mm512_or_ps(erf_abs, _mm512_and_ps(v, sign));
  return _mm512_fmadd_ps(erf, _mm512_set1_ps(0.5f), _mm512_set1_ps(0.5f));
}
#endif

// GELU of n floats: y = x Phi(x) and, when d is not null, d = GELU'(x) = Phi(x) + x phi(x). y may be x.
void gelu_range(const float* x, float* y, float* d, int64_t n) {
  constexpr float kInvSqrt2Pi = 0.39894228040143268f;
#if defined(__AVX512F__)
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 keep = first_lanes(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(keep, x + i);
    const __m512 e = exp_half_square16(v);
    const __m512 cdf = normal_cdf16(v, e);
    _mm512_mask_storeu_ps(y + i, keep, _mm512_mul_ps(v, cdf));
    if (d != nullptr)
      _mm512_mask_storeu_ps(d + i, keep, _mm512_fmadd_ps(_mm512_mul_ps(v, _mm512_set1_ps(kInvSqrt2Pi)), e, cdf));
  }
#else
  if (d != nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      const float e = exp_nonpositive(-0.5f * v * v);
      const float cdf = normal_cdf(v, e);
      y[i] = v * cdf;
      d[i] = cdf + v * kInvSqrt2Pi * e;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      y[i] = v * normal_cdf(v, exp_nonpositive(-0.5f * v * v));
    }
  }
#endif
}

// One row of LayerNorm and of its backward; C > 0 is the width known at compile time (no run-time loop
// bounds, peeling or remainder checks, which cost more than the arithmetic on narrow rows), C == 0 a
// width given at run time.
template <int C>
inline float layer_norm_row(const float* __restrict__ xr, float* __restrict__ yr, int64_t c_rt, float eps) {
  const int64_t c = C > 0 ? C : c_rt;
  const float inv_c = 1.0f / static_cast<float>(c);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < c; ++k) sum += xr[k];
  const float mean = sum * inv_c;
  float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
  for (int64_t k = 0; k < c; ++k) {
    const float dk = xr[k] - mean;
    sq += dk * dk;
  }
  const float rs = 1.0f / std::sqrt(sq * inv_c + eps);
  for (int64_t k = 0; k < c; ++k) yr[k] = (xr[k] - mean) * rs;
  return rs;
}

template <int C>
inline void layer_norm_backward_row(const float* __restrict__ gr, const float* __restrict__ yr, float rs,
                                    float* __restrict__ orow, int64_t c_rt) {
  const int64_t c = C > 0 ? C : c_rt;
  const float inv_c = 1.0f / static_cast<float>(c);
  float sg = 0.0f, sgy = 0.0f;
#pragma omp simd reduction(+ : sg, sgy)
  for (int64_t k = 0; k < c; ++k) {
    sg += gr[k];
    sgy += gr[k] * yr[k];
  }
  const float mg = sg * inv_c, mgy = sgy * inv_c;
  for (int64_t k = 0; k < c; ++k) orow[k] = rs * (gr[k] - mg - yr[k] * mgy);
}

// Narrow rows (C <= 32) in blocks of 16: the statistics of 16 rows at once, one row per vector lane,
// so there is no per-row horizontal reduction.
constexpr int64_t kLaneRows = 16;

template <int C>
inline void layer_norm_block16(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ rstd,
                               float eps) {
  float t[C][kLaneRows];  // the block transposed: channel-major, so the statistics are lane-wise
  for (int64_t r = 0; r < kLaneRows; ++r) {
#pragma GCC unroll 32
    for (int64_t k = 0; k < C; ++k) t[k][r] = x[r * C + k];
  }
  float mean[kLaneRows], rs[kLaneRows], sq[kLaneRows];
  constexpr float inv_c = 1.0f / static_cast<float>(C);
#pragma omp simd
  for (int64_t r = 0; r < kLaneRows; ++r) mean[r] = 0.0f;
  for (int64_t k = 0; k < C; ++k) {
#pragma omp simd
    for (int64_t r = 0; r < kLaneRows; ++r) mean[r] += t[k][r];
  }
#pragma omp simd
  for (int64_t r = 0; r < kLaneRows; ++r) {
    mean[r] *= inv_c;
    sq[r] = 0.0f;
  }
  for (int64_t k = 0; k < C; ++k) {
#pragma omp simd
    for (int64_t r = 0; r < kLaneRows; ++r) {
      const float dk = t[k][r] - mean[r];
      sq[r] += dk * dk;
    }
  }
#pragma omp simd
  for (int64_t r = 0; r < kLaneRows; ++r) rs[r] = 1.0f / std::sqrt(sq[r] * inv_c + eps);
  for (int64_t r = 0; r < kLaneRows; ++r) {
    const float mu = mean[r], s = rs[r];
#pragma omp simd
    for (int64_t k = 0; k < C; ++k) y[r * C + k] = (x[r * C + k] - mu) * s;
    rstd[r] = s;
  }
}


template <int C>
void layer_norm_rows(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ rstd,
                     int64_t rows, int64_t c, float eps) {
  int64_t m = 0;
  if constexpr (C > 0 && C <= 32) {
    for (; m + kLaneRows <= rows; m += kLaneRows) layer_norm_block16<C>(x + m * c, y + m * c, rstd + m, eps);
  }
  for (; m < rows; ++m) rstd[m] = layer_norm_row<C>(x + m * c, y + m * c, c, eps);
}

template <int C>
void layer_norm_backward_rows(const float* __restrict__ gy, const float* __restrict__ y,
                              const float* __restrict__ rstd, float* __restrict__ gx, int64_t rows, int64_t c) {
  // (a lane-per-row block version like layer_norm_block16 measured no faster here)
  for (int64_t m = 0; m < rows; ++m) layer_norm_backward_row<C>(gy + m * c, y + m * c, rstd[m], gx + m * c, c);
}


// Calls f.template operator()<C>() with C the compile-time width for c where there is one, else 0.
template <typename F>
void dispatch_width(int64_t c, F&& f) {
  switch (c) {
    case 4: f.template operator()<4>(); break;
    case 8: f.template operator()<8>(); break;
    case 12: f.template operator()<12>(); break;
    case 16: f.template operator()<16>(); break;
    case 24: f.template operator()<24>(); break;
    case 32: f.template operator()<32>(); break;
    case 48: f.template operator()<48>(); break;
    case 64: f.template operator()<64>(); break;
    case 96: f.template operator()<96>(); break;
    default: f.template operator()<0>(); break;
  }
}

}  // namespace

// GELU(x) = x Phi(x); with_derivative also returns GELU'(x) = Phi(x) + x phi(x) (the backward is then
// one multiplication, and x itself need not be kept).
std::vector<torch::Tensor> gelu_forward(const torch::Tensor& x, bool with_derivative) {
  check_float_contiguous(x, "gelu_forward");
  auto y = torch::empty_like(x);
  torch::Tensor d = with_derivative ? torch::empty_like(x) : torch::Tensor();
  const float* px = x.data_ptr<float>();
  float* py = y.data_ptr<float>();
  float* pd = with_derivative ? d.data_ptr<float>() : nullptr;
  at::parallel_for(0, x.numel(), kElemGrain, [=](int64_t begin, int64_t end) {
    gelu_range(px + begin, py + begin, pd == nullptr ? nullptr : pd + begin, end - begin);
  });
  if (with_derivative) return {y, d};
  return {y};
}

// LayerNorm without affine over the last axis: returns (y, rstd) with y = (x - mean) * rstd and
// rstd = 1 / sqrt(var + eps) (biased variance), rstd of shape x.shape[:-1].
std::vector<torch::Tensor> layer_norm_forward(const torch::Tensor& x, double eps) {
  check_float_contiguous(x, "layer_norm_forward");
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) > 0, "layer_norm_forward: empty channel axis");
  const int64_t c = x.size(-1);
  auto y = torch::empty_like(x);
  auto sizes = x.sizes().vec();
  sizes.pop_back();
  auto rstd = torch::empty(sizes, x.options());
  const float* px = x.data_ptr<float>();
  float* py = y.data_ptr<float>();
  float* pr = rstd.data_ptr<float>();
  const float feps = static_cast<float>(eps);
  const int64_t rows = x.numel() / c;
  // tasks start at multiples of 16 rows, so each row takes the same path whatever the thread count
  at::parallel_for(0, (rows + kLaneRows - 1) / kLaneRows, kRowGrain / kLaneRows, [=](int64_t b0, int64_t b1) {
    const int64_t begin = b0 * kLaneRows, end = std::min(b1 * kLaneRows, rows);
    dispatch_width(c, [&]<int C>() { layer_norm_rows<C>(px + begin * c, py + begin * c, pr + begin, end - begin, c, feps); });
  });
  return {y, rstd};
}

// Input gradient of layer_norm_forward from its output y and rstd:
// gx = rstd * (gy - mean(gy) - y * mean(gy * y)) along the last axis.
torch::Tensor layer_norm_backward(const torch::Tensor& gy, const torch::Tensor& y, const torch::Tensor& rstd) {
  check_float_contiguous(gy, "layer_norm_backward");
  check_float_contiguous(y, "layer_norm_backward");
  check_float_contiguous(rstd, "layer_norm_backward");
  TORCH_CHECK(gy.sizes() == y.sizes(), "layer_norm_backward: gradient and output shapes differ");
  const int64_t c = y.size(-1);
  const int64_t rows = y.numel() / c;
  TORCH_CHECK(rstd.numel() == rows, "layer_norm_backward: rstd has ", rstd.numel(), " rows, expected ", rows);
  auto gx = torch::empty_like(y);
  const float* pg = gy.data_ptr<float>();
  const float* py = y.data_ptr<float>();
  const float* pr = rstd.data_ptr<float>();
  float* po = gx.data_ptr<float>();
  at::parallel_for(0, (rows + kLaneRows - 1) / kLaneRows, kRowGrain / kLaneRows, [=](int64_t b0, int64_t b1) {
    const int64_t begin = b0 * kLaneRows, end = std::min(b1 * kLaneRows, rows);
    dispatch_width(c, [&]<int C>() {
      layer_norm_backward_rows<C>(pg + begin * c, py + begin * c, pr + begin, po + begin * c, end - begin, c);
    });
  });
  return gx;
}

// Bilinear x s up-sampling (align_corners=False, as F.interpolate) of channels-last frames plus the
// stage's s x s encoding table, in one pass: x [B, h, w, C], table [B, s, s, C] -> [B, s h, s w, C].
torch::Tensor upsample_add(const torch::Tensor& x, int64_t s, const torch::Tensor& table) {
  check_float_contiguous(x, "upsample_add x");
  check_float_contiguous(table, "upsample_add table");
  TORCH_CHECK(x.dim() == 4 && s >= 1, "upsample_add: x [B, h, w, C] and a scale >= 1 expected");
  const int64_t B = x.size(0), h = x.size(1), w = x.size(2), C = x.size(3), oh = h * s, ow = w * s;
  TORCH_CHECK(table.dim() == 4 && table.size(0) == B && table.size(1) == s && table.size(2) == s && table.size(3) == C,
              "upsample_add: table [B, s, s, C] expected");
  auto out = torch::empty({B, oh, ow, C}, x.options());
  // source index and weights of each output coordinate, as ATen's area_pixel_compute_source_index
  auto coords = [](int64_t n_in, int64_t n_out, std::vector<int64_t>& i0, std::vector<int64_t>& i1,
                   std::vector<float>& l0, std::vector<float>& l1) {
    const float scale = static_cast<float>(n_in) / static_cast<float>(n_out);
    for (int64_t o = 0; o < n_out; ++o) {
      float src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
      src = src < 0.0f ? 0.0f : src;
      const int64_t a = static_cast<int64_t>(src);
      const float lam = src - static_cast<float>(a);
      i0[o] = a;
      i1[o] = a + (a < n_in - 1 ? 1 : 0);
      l1[o] = lam;
      l0[o] = 1.0f - lam;
    }
  };
  std::vector<int64_t> y0(oh), y1(oh), x0(ow), x1(ow);
  std::vector<float> ly0(oh), ly1(oh), lx0(ow), lx1(ow);
  coords(h, oh, y0, y1, ly0, ly1);
  coords(w, ow, x0, x1, lx0, lx1);
  const float* px = x.data_ptr<float>();
  const float* pt = table.data_ptr<float>();
  float* po = out.data_ptr<float>();
  at::parallel_for(0, B * oh, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / oh, oy = r % oh;
      const float* row0 = px + (b * h + y0[oy]) * w * C;
      const float* row1 = px + (b * h + y1[oy]) * w * C;
      const float* trow = pt + ((b * s) + oy % s) * s * C;
      const float h0 = ly0[oy], h1 = ly1[oy];
      float* orow = po + r * ow * C;
      for (int64_t ox = 0; ox < ow; ++ox) {
        const float w0 = lx0[ox], w1 = lx1[ox];
        const float* a = row0 + x0[ox] * C;
        const float* bb = row0 + x1[ox] * C;
        const float* c = row1 + x0[ox] * C;
        const float* d = row1 + x1[ox] * C;
        const float* e = trow + (ox % s) * C;
        float* o = orow + ox * C;
#pragma omp simd
        for (int64_t k = 0; k < C; ++k) o[k] = h0 * (w0 * a[k] + w1 * bb[k]) + h1 * (w0 * c[k] + w1 * d[k]) + e[k];
      }
    }
  });
  return out;
}

// ---- SSIM (the training loss) --------------------------------------------------------------------
// x, y: [N, C, H, W] contiguous float32 (P = N * C planes); win: the k normalised 1-D Gaussian taps
// (k odd, k <= H, W). "Valid" filtering gives h = H - k + 1 rows and w = W - k + 1 columns of local
// moments mu_x, mu_y, e_xx = blur(x^2), e_yy, e_xy, from which
//   l = (2 mu_x mu_y + c1) / b1,  b1 = mu_x^2 + mu_y^2 + c1,
//   cs = (2 (e_xy - mu_x mu_y) + c2) / b2,  b2 = e_xx + e_yy - b1 + c1 + c2 = var_x + var_y + c2.
// Each output row is made from its k input rows (vertical pass into a row buffer, then horizontal), so
// the five moment maps are never written out.

namespace {

constexpr int kSaved = 6;  // per output pixel, kept for the backward: mu_x, mu_y, l, cs, b1, b2

void ssim_forward_row(const float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ win,
                      int64_t k, int64_t W, int64_t w, float c1, float c2, float* __restrict__ vbuf,
                      float* __restrict__ saved, int64_t plane_stride, double& sum_s, double& sum_cs) {
  float* __restrict__ v0 = vbuf;  // vertical blurs of x, y, x^2, y^2, xy: 5 rows of W
  float* __restrict__ v1 = vbuf + W;
  float* __restrict__ v2 = vbuf + 2 * W;
  float* __restrict__ v3 = vbuf + 3 * W;
  float* __restrict__ v4 = vbuf + 4 * W;
  for (int64_t c = 0; c < 5 * W; ++c) vbuf[c] = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    const float wi = win[i];
    const float* __restrict__ xr = x + i * W;
    const float* __restrict__ yr = y + i * W;
#pragma omp simd
    for (int64_t c = 0; c < W; ++c) {
      const float xv = xr[c], yv = yr[c];
      v0[c] += wi * xv;
      v1[c] += wi * yv;
      v2[c] += wi * (xv * xv);
      v3[c] += wi * (yv * yv);
      v4[c] += wi * (xv * yv);
    }
  }
  // horizontal pass into 5 rows of w (vbuf + 5 W onwards), tap by tap
  float* __restrict__ m0 = vbuf + 5 * W;
  float* __restrict__ m1 = m0 + w;
  float* __restrict__ m2 = m0 + 2 * w;
  float* __restrict__ m3 = m0 + 3 * w;
  float* __restrict__ m4 = m0 + 4 * w;
  for (int64_t c = 0; c < 5 * w; ++c) m0[c] = 0.0f;
  for (int64_t j = 0; j < k; ++j) {
    const float wj = win[j];
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) {
      m0[c] += wj * v0[c + j];
      m1[c] += wj * v1[c + j];
      m2[c] += wj * v2[c + j];
      m3[c] += wj * v3[c + j];
      m4[c] += wj * v4[c + j];
    }
  }
  float* __restrict__ s_mx = saved;
  float* __restrict__ s_my = saved + plane_stride;
  float* __restrict__ s_l = saved + 2 * plane_stride;
  float* __restrict__ s_cs = saved + 3 * plane_stride;
  float* __restrict__ s_b1 = saved + 4 * plane_stride;
  float* __restrict__ s_b2 = saved + 5 * plane_stride;
  float row_s = 0.0f, row_cs = 0.0f;
#pragma omp simd reduction(+ : row_s, row_cs)
  for (int64_t c = 0; c < w; ++c) {
    const float mx = m0[c], my = m1[c], exx = m2[c], eyy = m3[c], exy = m4[c];
    const float mxy = mx * my;
    const float b1 = mx * mx + my * my + c1;
    const float l = (2.0f * mxy + c1) / b1;
    const float b2 = (exx + eyy) - b1 + (c1 + c2);
    const float cs = (2.0f * (exy - mxy) + c2) / b2;
    s_mx[c] = mx;
    s_my[c] = my;
    s_l[c] = l;
    s_cs[c] = cs;
    s_b1[c] = b1;
    s_b2[c] = b2;
    row_s += l * cs;
    row_cs += cs;
  }
  sum_s = row_s;
  sum_cs = row_cs;
}

void check_ssim_args(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& win) {
  check_float_contiguous(x, "ssim");
  check_float_contiguous(y, "ssim");
  check_float_contiguous(win, "ssim");
  TORCH_CHECK(x.dim() == 4 && x.sizes() == y.sizes(), "ssim: expected two [N, C, H, W] tensors of one shape");
  const int64_t k = win.numel();
  TORCH_CHECK(k % 2 == 1 && k <= x.size(2) && k <= x.size(3), "ssim: odd window no larger than the frame");
}

}  // namespace

// Per-plane mean SSIM and mean cs, [N, C] each, and the [6, N, C, h, w] maps the backward needs.
std::vector<torch::Tensor> ssim_forward(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& win,
                                        double c1, double c2) {
  check_ssim_args(x, y, win);
  const int64_t n = x.size(0), ch = x.size(1), H = x.size(2), W = x.size(3), k = win.numel();
  const int64_t h = H - k + 1, w = W - k + 1, planes = n * ch;
  auto saved = torch::empty({kSaved, n, ch, h, w}, x.options());
  auto row_sums = torch::empty({2, planes, h}, x.options().dtype(torch::kDouble));
  const float* px = x.data_ptr<float>();
  const float* py = y.data_ptr<float>();
  const float* pw = win.data_ptr<float>();
  float* ps = saved.data_ptr<float>();
  double* prs = row_sums.data_ptr<double>();
  const int64_t plane_stride = planes * h * w;  // between the saved maps
  const float fc1 = static_cast<float>(c1), fc2 = static_cast<float>(c2);
  at::parallel_for(0, planes * h, 16, [=](int64_t begin, int64_t end) {
    std::vector<float> vbuf(5 * W + 5 * w);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t p = item / h, r = item % h;
      double srow, csrow;
      ssim_forward_row(px + (p * H + r) * W, py + (p * H + r) * W, pw, k, W, w, fc1, fc2, vbuf.data(),
                       ps + (p * h + r) * w, plane_stride, srow, csrow);
      prs[item] = srow;
      prs[planes * h + item] = csrow;
    }
  });
  // fixed-order reduction of the row sums: the same result for any thread count
  auto means = row_sums.sum(-1).div_(static_cast<double>(h * w)).to(torch::kFloat).view({2, n, ch});
  return {means[0], means[1], saved};
}

// Gradient wrt x of sum_p (g_s[p] * S[p] + g_cs[p] * CS[p]) for the S, CS of ssim_forward; y is constant.
torch::Tensor ssim_backward(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& win,
                            const torch::Tensor& saved, const torch::Tensor& g_s, const torch::Tensor& g_cs) {
  check_ssim_args(x, y, win);
  check_float_contiguous(saved, "ssim_backward");
  const int64_t n = x.size(0), ch = x.size(1), H = x.size(2), W = x.size(3), k = win.numel();
  const int64_t h = H - k + 1, w = W - k + 1, planes = n * ch;
  TORCH_CHECK(saved.numel() == kSaved * planes * h * w, "ssim_backward: saved maps of the wrong size");
  auto gs = g_s.to(torch::kFloat).contiguous().view({planes}).mul(1.0 / static_cast<double>(h * w));
  auto gcs = g_cs.to(torch::kFloat).contiguous().view({planes}).mul(1.0 / static_cast<double>(h * w));
  // adjoint of the horizontal pass, per output row: u = [3, planes, h, W] (d/d mu_x, e_xx, e_xy)
  auto u = torch::empty({3, planes, h, W}, x.options());
  auto gx = torch::empty_like(x);
  const float* px = x.data_ptr<float>();
  const float* py = y.data_ptr<float>();
  const float* pw = win.data_ptr<float>();
  const float* ps = saved.data_ptr<float>();
  const float* pgs = gs.data_ptr<float>();
  const float* pgcs = gcs.data_ptr<float>();
  float* pu = u.data_ptr<float>();
  float* pgx = gx.data_ptr<float>();
  const int64_t map = planes * h * w, umap = planes * h * W;
  at::parallel_for(0, planes * h, 16, [=](int64_t begin, int64_t end) {
    std::vector<float> gbuf(3 * w);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t p = item / h;
      const float ws = pgs[p], wcs = pgcs[p];
      const float* __restrict__ mx = ps + item * w;
      const float* __restrict__ my = mx + map;
      const float* __restrict__ l = mx + 2 * map;
      const float* __restrict__ cs = mx + 3 * map;
      const float* __restrict__ b1 = mx + 4 * map;
      const float* __restrict__ b2 = mx + 5 * map;
      float* __restrict__ g_mu = gbuf.data();
      float* __restrict__ g_xx = g_mu + w;
      float* __restrict__ g_xy = g_mu + 2 * w;
#pragma omp simd
      for (int64_t c = 0; c < w; ++c) {
        const float ga2 = (l[c] * ws + wcs) / b2[c];
        const float gb2 = -ga2 * cs[c];
        const float ga1 = cs[c] * ws / b1[c];
        const float gb1 = -ga1 * l[c];
        g_mu[c] = 2.0f * (my[c] * (ga1 - ga2) + mx[c] * (gb1 - gb2));
        g_xx[c] = gb2;
        g_xy[c] = 2.0f * ga2;
      }
      float* __restrict__ u0 = pu + item * W;
      float* __restrict__ u1 = u0 + umap;
      float* __restrict__ u2 = u0 + 2 * umap;
      for (int64_t c = 0; c < W; ++c) {
        u0[c] = 0.0f;
        u1[c] = 0.0f;
        u2[c] = 0.0f;
      }
      for (int64_t j = 0; j < k; ++j) {
        const float wj = pw[j];
#pragma omp simd
        for (int64_t c = 0; c < w; ++c) {
          u0[c + j] += wj * g_mu[c];
          u1[c + j] += wj * g_xx[c];
          u2[c + j] += wj * g_xy[c];
        }
      }
    }
  });
  // adjoint of the vertical pass and the moments' derivatives, per input row
  at::parallel_for(0, planes * H, 16, [=](int64_t begin, int64_t end) {
    std::vector<float> dbuf(3 * W);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t p = item / H, r = item % H;
      float* __restrict__ d0 = dbuf.data();
      float* __restrict__ d1 = d0 + W;
      float* __restrict__ d2 = d0 + 2 * W;
      for (int64_t c = 0; c < 3 * W; ++c) d0[c] = 0.0f;
      const int64_t i_lo = r - (h - 1) > 0 ? r - (h - 1) : 0;
      const int64_t i_hi = r < k - 1 ? r : k - 1;
      for (int64_t i = i_lo; i <= i_hi; ++i) {  // output row r - i sees input row r through tap i
        const float wi = pw[i];
        const float* __restrict__ u0 = pu + (p * h + r - i) * W;
        const float* __restrict__ u1 = u0 + umap;
        const float* __restrict__ u2 = u0 + 2 * umap;
#pragma omp simd
        for (int64_t c = 0; c < W; ++c) {
          d0[c] += wi * u0[c];
          d1[c] += wi * u1[c];
          d2[c] += wi * u2[c];
        }
      }
      const float* __restrict__ xr = px + item * W;
      const float* __restrict__ yr = py + item * W;
      float* __restrict__ out = pgx + item * W;
#pragma omp simd
      for (int64_t c = 0; c < W; ++c) out[c] = d0[c] + 2.0f * xr[c] * d1[c] + yr[c] * d2[c];
    }
  });
  return gx;
}

// ---- The MLP of a ConvNeXt block: out = [x +] [mask *] fc2(GELU(fc1(LN(z)))) ---------------------------
// z: [M, K] rows (the depth-wise conv's output), w1: [H, K] (fc1), w2: [N, H] (fc2). Rows are taken 48 at a
// time: LayerNorm into a buffer, fc1 by a register-tiled AVX-512 product (6 rows x up to 64 columns per
// tile), GELU on the tile while it is in cache, then fc2 the same way, adding the residual on the way out.
// When decoding, the hidden activations (the network's widest tensors) never leave the cache; training
// writes what its backward needs (LN output, rstd, GELU output and derivative). Each output element is
// one dot product summed in k order, so results do not depend on the thread count or the blocking.
// Compiled only where the compiler targets AVX-512 (avx512_available() says so); elsewhere the callers
// keep the oneDNN path.

#if defined(__AVX512F__)
namespace {

constexpr int kTileRows = 6;    // rows per register tile
constexpr int kTileVecs = 4;    // 16-float vectors per register tile (64 columns)
constexpr int64_t kMlpRows = 48;  // rows per block (a multiple of kTileRows and of kLaneRows)

inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

constexpr __mmask16 kAllLanes = 0xFFFF;

// acc[r][v] = sum_k a[r * ars + k * aks] * b[k * ldb + 16 v ...], r < MR, v < NV, the last of the NV vectors of
// b loaded under `last` (the others whole); then epi(r, v, acc[r][v]) for each. a is read row-major (ars = lda,
// aks = 1) or transposed (ars = 1, aks = lda). Everything is inlined and unrolled so acc stays in registers.
template <int MR, int NV, typename Epi>
__attribute__((always_inline)) inline void tile_product(const float* __restrict__ a, int64_t ars, int64_t aks,
                                                        const float* __restrict__ b, int64_t ldb, int64_t kdim,
                                                        __mmask16 last, Epi&& epi) {
  __m512 acc[MR][NV];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kdim; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, b + k * ldb + 16 * v) : _mm512_loadu_ps(b + k * ldb + 16 * v);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * ars + k * aks]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) epi(r, v, acc[r][v]);
  }
}

// f.template operator()<MR, NV>() for 1 <= mr <= 6, 1 <= nv <= 4
template <typename F>
inline void dispatch_tile(int mr, int nv, F&& f) {
#define HINERV_TILE_NV(MR)                             \
  switch (nv) {                                        \
    case 1: f.template operator()<MR, 1>(); break;     \
    case 2: f.template operator()<MR, 2>(); break;     \
    case 3: f.template operator()<MR, 3>(); break;     \
    default: f.template operator()<MR, 4>(); break;    \
  }
  switch (mr) {
    case 1: HINERV_TILE_NV(1) break;
    case 2: HINERV_TILE_NV(2) break;
    case 3: HINERV_TILE_NV(3) break;
    case 4: HINERV_TILE_NV(4) break;
    case 5: HINERV_TILE_NV(5) break;
    default: HINERV_TILE_NV(6) break;
  }
#undef HINERV_TILE_NV
}

// f.template operator()<MR, NV>(r0, j0) for each register tile of rows [r0, r0 + mr) across cols_p columns (a
// multiple of 16), up to 64 columns a tile
template <typename F>
inline void for_each_column_tile(int64_t r0, int mr, int64_t cols_p, F&& f) {
  for (int64_t j0 = 0; j0 < cols_p; j0 += 16 * kTileVecs) {
    const int nv = static_cast<int>(std::min<int64_t>(kTileVecs, (cols_p - j0) / 16));
    dispatch_tile(mr, nv, [&]<int MR, int NV>() { f.template operator()<MR, NV>(r0, j0); });
  }
}

// the same over every register tile of a rows x cols_p block, 6 rows at a time
template <typename F>
inline void for_each_tile(int64_t rows, int64_t cols_p, F&& f) {
  for (int64_t r0 = 0; r0 < rows; r0 += kTileRows)
    for_each_column_tile(r0, static_cast<int>(std::min<int64_t>(kTileRows, rows - r0)), cols_p, f);
}

// [R, C] row-major -> [C, round16(R)] (zero-padded columns): a weight laid out for tile_product's b
torch::Tensor pack_transposed(const torch::Tensor& w) {
  const auto wc = w.contiguous();
  const int64_t rows = wc.size(0), cols = wc.size(1), rp = round16(rows);
  auto out = torch::empty({cols, rp}, wc.options());
  const float* src = wc.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  for (int64_t c = 0; c < cols; ++c) {
    float* drow = dst + c * rp;
    for (int64_t r = 0; r < rows; ++r) drow[r] = src[r * cols + c];
    for (int64_t r = rows; r < rp; ++r) drow[r] = 0.0f;
  }
  return out;
}

// [R, C] -> [R, round16(C)] (zero-padded columns)
torch::Tensor pack_padded(const torch::Tensor& w) {
  const auto wc = w.contiguous();
  const int64_t rows = wc.size(0), cols = wc.size(1), cp = round16(cols);
  auto out = torch::empty({rows, cp}, wc.options());
  const float* src = wc.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + r * cp, src + r * cols, sizeof(float) * cols);
    for (int64_t c = cols; c < cp; ++c) dst[r * cp + c] = 0.0f;
  }
  return out;
}

struct MlpArgs {
  const float* z;      // [M, K]
  const float* w1t;    // [K, Hp]
  const float* w2t;    // [H, Np]
  const float* res;    // [M, N] or null
  const float* mask;   // [M] or null
  float* out;          // [M, N]
  float* xn;           // [M, K] LayerNorm output (training) or null
  float* rstd;         // [M] (training) or null
  float* y;            // [M, H] GELU output (training) or null
  float* d;            // [M, H] GELU derivative (training) or null
  int64_t K, H, N, Hp, Np;
  bool normalize;
  float eps;
};

void mlp_block(const MlpArgs& p, int64_t m0, int64_t rows, float* xbuf, float* rbuf, float* hbuf) {
  const int64_t K = p.K, H = p.H, N = p.N, Hp = p.Hp, Np = p.Np;
  // fc1's input: the LayerNorm of the block's rows (kept for the backward when training)
  const float* z = p.z + m0 * K;
  const float* a1 = z;
  if (p.normalize) {
    float* xn = p.xn != nullptr ? p.xn + m0 * K : xbuf;
    float* rs = p.rstd != nullptr ? p.rstd + m0 : rbuf;
    dispatch_width(K, [&]<int C>() { layer_norm_rows<C>(z, xn, rs, rows, K, p.eps); });
    a1 = xn;
  }
  // fc1 into hbuf [rows, H], then GELU a tile of rows at a time in one run: in place, or into y (and d)
  // when training
  const bool train = p.y != nullptr;
  const float* a2 = train ? p.y + m0 * H : hbuf;
  for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const int mr = static_cast<int>(std::min<int64_t>(kTileRows, rows - r0));
    for_each_column_tile(r0, mr, Hp, [&]<int MR, int NV>(int64_t r0, int64_t j0) {
      float* h = hbuf + r0 * H + j0;
      tile_product<MR, NV>(a1 + r0 * K, K, 1, p.w1t + j0, Hp, K, kAllLanes, [&](int r, int v, __m512 acc) {
        _mm512_mask_storeu_ps(h + r * H + 16 * v, first_lanes(H - j0 - 16 * v), acc);
      });
    });
    if (train)
      gelu_range(hbuf + r0 * H, p.y + (m0 + r0) * H, p.d + (m0 + r0) * H, mr * H);
    else
      gelu_range(hbuf + r0 * H, hbuf + r0 * H, nullptr, mr * H);
  }
  // fc2 (+ mask, + residual) into the output rows
  for_each_tile(rows, Np, [&]<int MR, int NV>(int64_t r0, int64_t j0) {
    tile_product<MR, NV>(a2 + r0 * H, H, 1, p.w2t + j0, Np, H, kAllLanes, [&](int r, int v, __m512 o) {
      const int64_t m = m0 + r0 + r;
      const int64_t c0 = j0 + 16 * v;
      const __mmask16 keep = first_lanes(N - c0);
      if (p.mask != nullptr) o = _mm512_mul_ps(o, _mm512_set1_ps(p.mask[m]));
      if (p.res != nullptr) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(keep, p.res + m * N + c0));
      _mm512_mask_storeu_ps(p.out + m * N + c0, keep, o);
    });
  });
}

// acc [rows_out, cols] += a^T b over `kdim` rows: a [kdim, rows_out] (stride lda), b [kdim, cols] (stride
// ldb); acc at stride ldc (cols rounded up to 16)
void add_transposed_product(const float* __restrict__ a, int64_t lda, int64_t rows_out, const float* __restrict__ b,
                            int64_t ldb, int64_t cols, int64_t kdim, float* __restrict__ acc, int64_t ldc) {
  for_each_tile(rows_out, round16(cols), [&]<int MR, int NV>(int64_t r0, int64_t j0) {
    const __mmask16 last = first_lanes(cols - j0 - 16 * (NV - 1));
    tile_product<MR, NV>(a + r0, 1, lda, b + j0, ldb, kdim, last, [&](int r, int v, __m512 o) {
      float* c = acc + (r0 + r) * ldc + j0 + 16 * v;
      _mm512_storeu_ps(c, _mm512_add_ps(_mm512_loadu_ps(c), o));
    });
  });
}

// One block of mlp_backward: gh = (g w2) * GELU' into ghb [rows, H]; gz = LN backward of gh w1; and the
// block's weight-gradient terms gh^T xn and g^T y added into gw1 [H, Kp] and gw2 [N, Hp].
void mlp_backward_block(const float* __restrict__ g, const float* __restrict__ w2p, const float* __restrict__ w1p,
                        const float* __restrict__ xn, const float* __restrict__ rstd, const float* __restrict__ d,
                        const float* __restrict__ y, float* __restrict__ ghb, float* __restrict__ gz,
                        float* __restrict__ gbuf, float* __restrict__ gw1, float* __restrict__ gw2, int64_t m0,
                        int64_t rows, int64_t K, int64_t H, int64_t N, bool normalize) {
  const int64_t Hp = round16(H), Kp = round16(K);
  for_each_tile(rows, Hp, [&]<int MR, int NV>(int64_t r0, int64_t j0) {
    tile_product<MR, NV>(g + (m0 + r0) * N, N, 1, w2p + j0, Hp, N, kAllLanes, [&](int r, int v, __m512 o) {
      const int64_t at = (r0 + r) * H + j0 + 16 * v;
      const __mmask16 keep = first_lanes(H - j0 - 16 * v);
      _mm512_mask_storeu_ps(ghb + at, keep, _mm512_mul_ps(o, _mm512_maskz_loadu_ps(keep, d + m0 * H + at)));
    });
  });
  float* gx = normalize ? gbuf : gz + m0 * K;
  for_each_tile(rows, Kp, [&]<int MR, int NV>(int64_t r0, int64_t j0) {
    tile_product<MR, NV>(ghb + r0 * H, H, 1, w1p + j0, Kp, H, kAllLanes, [&](int r, int v, __m512 o) {
      const int64_t c0 = j0 + 16 * v;
      _mm512_mask_storeu_ps(gx + (r0 + r) * K + c0, first_lanes(K - c0), o);
    });
  });
  if (normalize) {
    dispatch_width(K, [&]<int C>() {
      layer_norm_backward_rows<C>(gbuf, xn + m0 * K, rstd + m0, gz + m0 * K, rows, K);
    });
  }
  add_transposed_product(ghb, H, H, xn + m0 * K, K, K, rows, gw1, Kp);
  add_transposed_product(g + m0 * N, N, N, y + m0 * H, H, H, rows, gw2, Hp);
}

}  // namespace

bool avx512_available() { return true; }

// out = [residual +] [mask *] fc2(GELU(fc1(LN(z)))) over the last axis (LN only with normalize). With
// save, also returns what the backward needs: (out, LN output, rstd, GELU output, GELU derivative).
std::vector<torch::Tensor> mlp_forward(const torch::Tensor& z, const torch::Tensor& w1, const torch::Tensor& w2,
                                       const c10::optional<torch::Tensor>& residual,
                                       const c10::optional<torch::Tensor>& mask, bool normalize, double eps,
                                       bool save) {
  check_float_contiguous(z, "mlp_forward z");
  check_float_contiguous(w1, "mlp_forward fc1");
  check_float_contiguous(w2, "mlp_forward fc2");
  TORCH_CHECK(z.dim() >= 1 && w1.dim() == 2 && w2.dim() == 2, "mlp_forward: expected z [..., K], fc1 [H, K], fc2 [N, H]");
  const int64_t K = z.size(-1), H = w1.size(0), N = w2.size(0);
  TORCH_CHECK(K > 0 && H > 0 && N > 0, "mlp_forward: empty axis");
  TORCH_CHECK(w1.size(1) == K, "mlp_forward: fc1 takes ", w1.size(1), " inputs, z has ", K, " channels");
  TORCH_CHECK(w2.size(1) == H, "mlp_forward: fc2 takes ", w2.size(1), " inputs, fc1 gives ", H);
  const int64_t M = z.numel() / K;
  auto out_sizes = z.sizes().vec();
  out_sizes.back() = N;
  auto out = torch::empty(out_sizes, z.options());
  const float* pres = nullptr;
  if (residual.has_value() && residual->defined()) {
    check_float_contiguous(*residual, "mlp_forward residual");
    TORCH_CHECK(residual->numel() == M * N, "mlp_forward: residual has ", residual->numel(), " elements, expected ", M * N);
    pres = residual->data_ptr<float>();
  }
  const float* pmask = nullptr;
  if (mask.has_value() && mask->defined()) {
    check_float_contiguous(*mask, "mlp_forward mask");
    TORCH_CHECK(mask->numel() == M, "mlp_forward: mask has ", mask->numel(), " elements, expected ", M);
    pmask = mask->data_ptr<float>();
  }
  auto w1t = pack_transposed(w1);  // [K, Hp]
  auto w2t = pack_transposed(w2);  // [H, Np]
  torch::Tensor xn, rstd, y, d;
  if (save) {
    xn = normalize ? torch::empty_like(z) : torch::Tensor();
    auto rs_sizes = z.sizes().vec();
    rs_sizes.pop_back();
    rstd = normalize ? torch::empty(rs_sizes, z.options()) : torch::Tensor();
    auto h_sizes = z.sizes().vec();
    h_sizes.back() = H;
    y = torch::empty(h_sizes, z.options());
    d = torch::empty(h_sizes, z.options());
  }
  MlpArgs p{z.data_ptr<float>(), w1t.data_ptr<float>(), w2t.data_ptr<float>(), pres, pmask,
            out.data_ptr<float>(),
            xn.defined() ? xn.data_ptr<float>() : nullptr, rstd.defined() ? rstd.data_ptr<float>() : nullptr,
            y.defined() ? y.data_ptr<float>() : nullptr, d.defined() ? d.data_ptr<float>() : nullptr,
            K, H, N, round16(H), round16(N), normalize, static_cast<float>(eps)};
  const int64_t blocks = (M + kMlpRows - 1) / kMlpRows;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> xbuf(kMlpRows * K), rbuf(kMlpRows), hbuf(kMlpRows * p.Hp);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t m0 = b * kMlpRows;
      mlp_block(p, m0, std::min(kMlpRows, M - m0), xbuf.data(), rbuf.data(), hbuf.data());
    }
  });
  if (save) return {out, xn, rstd, y, d};
  return {out};
}

// The gradients of mlp_forward(z, w1, w2, normalize=..., save=True) given its output gradient g (already
// multiplied by the mask, if any) and the saved (xn, rstd, y, d): returns (gz, gw1, gw2), the gradients at z
// [..., K], fc1 [H, K] and fc2 [N, H]. xn is z itself without normalize. The weight gradients are summed
// block by block within fixed groups of rows and the groups added in order: independent of the thread
// count.
std::vector<torch::Tensor> mlp_backward(const torch::Tensor& g, const torch::Tensor& w1, const torch::Tensor& w2,
                                        const torch::Tensor& xn, const c10::optional<torch::Tensor>& rstd,
                                        const torch::Tensor& y, const torch::Tensor& d, bool normalize) {
  check_float_contiguous(g, "mlp_backward g");
  check_float_contiguous(w1, "mlp_backward fc1");
  check_float_contiguous(w2, "mlp_backward fc2");
  check_float_contiguous(xn, "mlp_backward xn");
  check_float_contiguous(y, "mlp_backward y");
  check_float_contiguous(d, "mlp_backward d");
  TORCH_CHECK(w1.dim() == 2 && w2.dim() == 2 && w2.size(1) == w1.size(0), "mlp_backward: fc1 [H, K], fc2 [N, H] expected");
  const int64_t K = w1.size(1), H = w1.size(0), N = w2.size(0);
  TORCH_CHECK(g.size(-1) == N && xn.size(-1) == K && d.size(-1) == H && y.size(-1) == H,
              "mlp_backward: widths do not match the weights");
  const int64_t M = g.numel() / N;
  TORCH_CHECK(xn.numel() == M * K && d.numel() == M * H && y.numel() == M * H, "mlp_backward: row counts differ");
  const float* prs = nullptr;
  if (normalize) {
    TORCH_CHECK(rstd.has_value() && rstd->defined(), "mlp_backward: normalize needs rstd");
    check_float_contiguous(*rstd, "mlp_backward rstd");
    TORCH_CHECK(rstd->numel() == M, "mlp_backward: rstd has ", rstd->numel(), " rows, expected ", M);
    prs = rstd->data_ptr<float>();
  }
  const int64_t Hp = round16(H), Kp = round16(K);
  auto gz = torch::empty_like(xn);
  auto w2p = pack_padded(w2);  // [N, Hp]
  auto w1p = pack_padded(w1);  // [H, Kp]
  const float* pg = g.data_ptr<float>();
  const float* pw2 = w2p.data_ptr<float>();
  const float* pw1 = w1p.data_ptr<float>();
  const float* px = xn.data_ptr<float>();
  const float* py = y.data_ptr<float>();
  const float* pd = d.data_ptr<float>();
  float* pgz = gz.data_ptr<float>();
  // fixed groups of blocks, each with its own weight-gradient sums (at most ~64 MB of them)
  const int64_t blocks = (M + kMlpRows - 1) / kMlpRows;
  const int64_t per_group_floats = H * Kp + N * Hp;
  const int64_t max_groups = std::max<int64_t>(1, (int64_t{16} << 20) / per_group_floats);
  const int64_t groups = std::max<int64_t>(1, std::min<int64_t>({(blocks + 15) / 16, int64_t{64}, max_groups}));
  const int64_t per_group = (blocks + groups - 1) / groups;
  std::vector<float> sums(groups * per_group_floats, 0.0f);
  float* psum = sums.data();
  at::parallel_for(0, groups, 1, [&](int64_t g0, int64_t g1) {
    std::vector<float> gbuf(kMlpRows * K), ghb(kMlpRows * H);
    for (int64_t gi = g0; gi < g1; ++gi) {
      float* gw1 = psum + gi * per_group_floats;
      float* gw2 = gw1 + H * Kp;
      for (int64_t b = gi * per_group; b < std::min(blocks, (gi + 1) * per_group); ++b) {
        const int64_t m0 = b * kMlpRows;
        mlp_backward_block(pg, pw2, pw1, px, prs, pd, py, ghb.data(), pgz, gbuf.data(), gw1, gw2, m0,
                           std::min(kMlpRows, M - m0), K, H, N, normalize);
      }
    }
  });
  for (int64_t gi = 1; gi < groups; ++gi)  // the groups added in order into the first one
    for (int64_t q = 0; q < per_group_floats; ++q) psum[q] += psum[gi * per_group_floats + q];
  auto total = torch::from_blob(psum, {per_group_floats}, g.options());  // [H, Kp] then [N, Hp]
  auto gw1 = total.narrow(0, 0, H * Kp).view({H, Kp}).narrow(1, 0, K).clone(at::MemoryFormat::Contiguous);
  auto gw2 = total.narrow(0, H * Kp, N * Hp).view({N, Hp}).narrow(1, 0, H).clone(at::MemoryFormat::Contiguous);
  return {gz, gw1, gw2};
}

// ---- Depth-wise conv ('same' zero padding, stride 1, odd k) on channels-last frames ----------------------
// x [B, H, W, C], w [C, 1, k, k] -> [B, H, W, C]. Each output pixel sums its taps row by row, left to right
// (the order oneDNN's kernel uses: results agree to the bit in the tests). Interior pixels run in groups of
// PX with CV 16-channel vectors per pixel; border pixels clip their taps.

namespace {

// `count` interior pixels of one image row, PX at a time: each input vector of a kernel row is loaded once
// and added into the (up to KS) pixels whose taps it is, in tap order.
template <int KS, int CV, int PX>
void dwconv_interior(const float* __restrict__ x, const float* __restrict__ wp, int64_t C, int64_t Wd,
                     int64_t count, float* __restrict__ out) {
  const int64_t Cp = round16(C);
  constexpr int half = KS / 2;
  __mmask16 keep[CV];
  for (int v = 0; v < CV; ++v) keep[v] = first_lanes(C - 16 * v);
  int64_t q = 0;
  for (; q + PX <= count; q += PX) {
    __m512 acc[PX][CV];
    for (int u = 0; u < PX; ++u)
      for (int v = 0; v < CV; ++v) acc[u][v] = _mm512_setzero_ps();
    for (int di = 0; di < KS; ++di) {
      __m512 wv[KS][CV];
      for (int dj = 0; dj < KS; ++dj)
        for (int v = 0; v < CV; ++v) wv[dj][v] = _mm512_loadu_ps(wp + (di * KS + dj) * Cp + 16 * v);
      const float* xr = x + ((di - half) * Wd + q - half) * C;
      for (int pp = 0; pp < PX + KS - 1; ++pp) {
        for (int v = 0; v < CV; ++v) {
          const __m512 xv = _mm512_maskz_loadu_ps(keep[v], xr + pp * C + 16 * v);
          for (int dj = 0; dj < KS; ++dj) {
            const int u = pp - dj;
            if (u >= 0 && u < PX) acc[u][v] = _mm512_fmadd_ps(xv, wv[dj][v], acc[u][v]);
          }
        }
      }
    }
    for (int u = 0; u < PX; ++u)
      for (int v = 0; v < CV; ++v) _mm512_mask_storeu_ps(out + (q + u) * C + 16 * v, keep[v], acc[u][v]);
  }
  for (; q < count; ++q) {
    __m512 acc[CV];
    for (int v = 0; v < CV; ++v) acc[v] = _mm512_setzero_ps();
    for (int di = 0; di < KS; ++di) {
      const float* xr = x + ((di - half) * Wd + q - half) * C;
      for (int dj = 0; dj < KS; ++dj)
        for (int v = 0; v < CV; ++v)
          acc[v] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(keep[v], xr + dj * C + 16 * v),
                                   _mm512_loadu_ps(wp + (di * KS + dj) * Cp + 16 * v), acc[v]);
    }
    for (int v = 0; v < CV; ++v) _mm512_mask_storeu_ps(out + q * C + 16 * v, keep[v], acc[v]);
  }
}

// one output pixel (i, j) of an image starting at img, taps clipped to the frame
void dwconv_border(const float* __restrict__ img, const float* __restrict__ wp, int64_t C, int64_t Hd, int64_t Wd,
                   int64_t ks, int64_t i, int64_t j, float* __restrict__ out) {
  const int64_t Cp = round16(C), half = ks / 2;
  const int64_t di0 = std::max<int64_t>(0, half - i), di1 = std::min<int64_t>(ks, Hd - i + half);
  const int64_t dj0 = std::max<int64_t>(0, half - j), dj1 = std::min<int64_t>(ks, Wd - j + half);
  for (int64_t c0 = 0; c0 < C; c0 += 16) {
    const __mmask16 keep = first_lanes(C - c0);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t di = di0; di < di1; ++di) {
      const float* xr = img + ((i + di - half) * Wd + (j - half)) * C + c0;
      const float* wr = wp + di * ks * Cp + c0;
      for (int64_t dj = dj0; dj < dj1; ++dj)
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(keep, xr + dj * C), _mm512_loadu_ps(wr + dj * Cp), acc);
    }
    _mm512_mask_storeu_ps(out + c0, keep, acc);
  }
}

template <int CV, int PX>
void dwconv_image_row(const float* img, const float* wp, int64_t C, int64_t Hd, int64_t Wd, int64_t ks, int64_t i,
                      float* orow) {
  if (ks != 3 || i < 1 || i >= Hd - 1 || Wd <= 2) {
    for (int64_t j = 0; j < Wd; ++j) dwconv_border(img, wp, C, Hd, Wd, ks, i, j, orow + j * C);
    return;
  }
  dwconv_border(img, wp, C, Hd, Wd, ks, i, 0, orow);
  dwconv_interior<3, CV, PX>(img + (i * Wd + 1) * C, wp, C, Wd, Wd - 2, orow + C);
  dwconv_border(img, wp, C, Hd, Wd, ks, i, Wd - 1, orow + (Wd - 1) * C);
}

}  // namespace

torch::Tensor dwconv_forward(const torch::Tensor& x, const torch::Tensor& w) {
  check_float_contiguous(x, "dwconv_forward x");
  TORCH_CHECK(x.dim() == 4, "dwconv_forward: x [B, H, W, C] expected");
  const int64_t B = x.size(0), Hd = x.size(1), Wd = x.size(2), C = x.size(3);
  TORCH_CHECK(w.dim() == 4 && w.size(0) == C && w.size(1) == 1 && w.size(2) == w.size(3) && w.size(2) % 2 == 1,
              "dwconv_forward: weight [C, 1, k, k] with odd k expected");
  TORCH_CHECK(w.scalar_type() == torch::kFloat, "dwconv_forward: float32 weight expected");
  const int64_t ks = w.size(2);
  auto wp = pack_transposed(w.reshape({C, ks * ks}));  // [k * k, Cp]
  auto out = torch::empty_like(x);
  const float* px = x.data_ptr<float>();
  const float* pw = wp.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const int64_t cv = (C + 15) / 16;
  at::parallel_for(0, B * Hd, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / Hd, i = r % Hd;
      const float* img = px + b * Hd * Wd * C;
      float* orow = po + r * Wd * C;
      switch (cv) {
        case 1: dwconv_image_row<1, 8>(img, pw, C, Hd, Wd, ks, i, orow); break;
        case 2: dwconv_image_row<2, 6>(img, pw, C, Hd, Wd, ks, i, orow); break;
        case 3: dwconv_image_row<3, 4>(img, pw, C, Hd, Wd, ks, i, orow); break;
        case 4: dwconv_image_row<4, 3>(img, pw, C, Hd, Wd, ks, i, orow); break;
        default: {
          for (int64_t j = 0; j < Wd; ++j) dwconv_border(img, pw, C, Hd, Wd, ks, i, j, orow + j * C);
        }
      }
    }
  });
  return out;
}

// ---- The RGB head (decoding): sigmoid(w y + b) of channels-last rows into [B, 3, H, W] planes --------------
// Lanes are pixels: 16 rows are copied into a cache-resident block and read back channel by channel with
// gathers, so the three dot products and sigmoids are plain lane-wise work and the planes are stored whole.

namespace {

// exp(x) = 2^(x log2 e) for x in [-87, 88] (clamped), with exp_half_square16's 2^f polynomial
inline __m512 exp16(__m512 x) {
  __m512 y = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  y = _mm512_min_ps(_mm512_max_ps(y, _mm512_set1_ps(-126.0f)), _mm512_set1_ps(127.0f));
  const __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(y, n);
  __m512 p = _mm512_set1_ps(1.5345810970757157e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3399930903688073e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618489071726799e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550328642129898e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.24022646248340607f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6931471824645996f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

}  // namespace

torch::Tensor head_forward(const torch::Tensor& y, const torch::Tensor& w, const torch::Tensor& b) {
  check_float_contiguous(y, "head_forward y");
  check_float_contiguous(w, "head_forward weight");
  check_float_contiguous(b, "head_forward bias");
  TORCH_CHECK(y.dim() == 4, "head_forward: y [B, H, W, C] expected");
  const int64_t B = y.size(0), C = y.size(3), P = y.size(1) * y.size(2);
  TORCH_CHECK(w.dim() == 2 && w.size(0) == 3 && w.size(1) == C && b.numel() == 3,
              "head_forward: weight [3, C] and bias [3] expected");
  auto out = torch::empty({B, 3, y.size(1), y.size(2)}, y.options());
  const float* py = y.data_ptr<float>();
  const float* pw = w.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const int64_t per_plane = (P + 15) / 16;
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int>(C)));
  at::parallel_for(0, B * per_plane, 256, [&](int64_t b0, int64_t b1) {
    std::vector<float> blk(16 * C);
    for (int64_t bi = b0; bi < b1; ++bi) {
      const int64_t frame = bi / per_plane, p0 = (bi % per_plane) * 16;
      const int64_t count = std::min<int64_t>(16, P - p0);
      const float* src = py + (frame * P + p0) * C;
      std::memcpy(blk.data(), src, sizeof(float) * count * C);
      for (int64_t q = count * C; q < 16 * C; ++q) blk[q] = 0.0f;
      __m512 a0 = _mm512_set1_ps(pb[0]), a1 = _mm512_set1_ps(pb[1]), a2 = _mm512_set1_ps(pb[2]);
      for (int64_t k = 0; k < C; ++k) {
        const __m512 v = _mm512_i32gather_ps(rows, blk.data() + k, 4);
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(pw[k]), v, a0);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(pw[C + k]), v, a1);
        a2 = _mm512_fmadd_ps(_mm512_set1_ps(pw[2 * C + k]), v, a2);
      }
      const __mmask16 keep = first_lanes(count);
      const __m512 one = _mm512_set1_ps(1.0f);
      float* dst = po + frame * 3 * P + p0;
      _mm512_mask_storeu_ps(dst, keep, _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), a0)))));
      _mm512_mask_storeu_ps(dst + P, keep, _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), a1)))));
      _mm512_mask_storeu_ps(dst + 2 * P, keep, _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), a2)))));
    }
  });
  return out;
}

// Weight gradient of dwconv_forward: gw[c, di, dj] = sum over pixels of g[i, j, c] x[i + di - k/2, j + dj - k/2, c]
// (zero outside the frame). Each image row's sums go to its own slot and the slots are added in row
// order, so the result does not depend on the thread count.
namespace {

// the slot [k * k, Cp] of image row i, channels [c0, c0 + 16) (masked to C)
void dwconv_wgrad_row(const float* __restrict__ img, const float* __restrict__ grow, int64_t C, int64_t c0,
                      int64_t Hd, int64_t Wd, int64_t ks, int64_t i, float* __restrict__ slot) {
  const int64_t Cp = round16(C), half = ks / 2;
  const __mmask16 keep = first_lanes(C - c0);
  for (int64_t di = 0; di < ks; ++di) {
    const int64_t ii = i + di - half;
    float* srow = slot + di * ks * Cp + c0;
    if (ii < 0 || ii >= Hd) {
      for (int64_t dj = 0; dj < ks; ++dj) _mm512_storeu_ps(srow + dj * Cp, _mm512_setzero_ps());
      continue;
    }
    const float* xrow = img + ii * Wd * C + c0;
    const float* gr = grow + c0;
    for (int64_t dj = 0; dj < ks; ++dj) {
      const int64_t off = dj - half;
      const int64_t j0 = std::max<int64_t>(0, -off), j1 = std::min<int64_t>(Wd, Wd - off);
      __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      int64_t j = j0;
      for (; j + 4 <= j1; j += 4) {
        for (int u = 0; u < 4; ++u)
          a[u] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(keep, gr + (j + u) * C),
                                 _mm512_maskz_loadu_ps(keep, xrow + (j + u + off) * C), a[u]);
      }
      for (; j < j1; ++j)
        a[0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(keep, gr + j * C), _mm512_maskz_loadu_ps(keep, xrow + (j + off) * C), a[0]);
      _mm512_storeu_ps(srow + dj * Cp, _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
    }
  }
}

// dwconv_wgrad_row for 3 x 3 taps: pixel by pixel, the nine sums in registers (the border columns with
// their taps clipped)
void dwconv_wgrad_row3(const float* __restrict__ img, const float* __restrict__ grow, int64_t C, int64_t c0,
                       int64_t Hd, int64_t Wd, int64_t i, float* __restrict__ slot) {
  const int64_t Cp = round16(C);
  const __mmask16 keep = first_lanes(C - c0);
  __m512 acc[9];
  for (int t = 0; t < 9; ++t) acc[t] = _mm512_setzero_ps();
  const float* xr[3];
  bool ok[3];
  for (int di = 0; di < 3; ++di) {
    const int64_t ii = i + di - 1;
    ok[di] = ii >= 0 && ii < Hd;
    xr[di] = img + (ok[di] ? ii : 0) * Wd * C + c0;
  }
  const float* gr = grow + c0;
  auto edge = [&](int64_t j) {
    const __m512 gv = _mm512_maskz_loadu_ps(keep, gr + j * C);
    for (int di = 0; di < 3; ++di) {
      if (!ok[di]) continue;
      for (int dj = 0; dj < 3; ++dj) {
        const int64_t jj = j + dj - 1;
        if (jj < 0 || jj >= Wd) continue;
        acc[di * 3 + dj] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(keep, xr[di] + jj * C), acc[di * 3 + dj]);
      }
    }
  };
  edge(0);
  for (int64_t j = 1; j < Wd - 1; ++j) {
    const __m512 gv = _mm512_maskz_loadu_ps(keep, gr + j * C);
    for (int di = 0; di < 3; ++di) {
      if (!ok[di]) continue;
      const float* x = xr[di] + (j - 1) * C;
      acc[di * 3 + 0] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(keep, x), acc[di * 3 + 0]);
      acc[di * 3 + 1] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(keep, x + C), acc[di * 3 + 1]);
      acc[di * 3 + 2] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(keep, x + 2 * C), acc[di * 3 + 2]);
    }
  }
  if (Wd > 1) edge(Wd - 1);
  for (int t = 0; t < 9; ++t) _mm512_storeu_ps(slot + t * Cp + c0, acc[t]);
}

}  // namespace

torch::Tensor dwconv_weight_grad(const torch::Tensor& x, const torch::Tensor& g, int64_t ks) {
  check_float_contiguous(x, "dwconv_weight_grad x");
  check_float_contiguous(g, "dwconv_weight_grad g");
  TORCH_CHECK(x.dim() == 4 && g.sizes() == x.sizes(), "dwconv_weight_grad: x and g [B, H, W, C] of one shape expected");
  TORCH_CHECK(ks >= 1 && ks % 2 == 1, "dwconv_weight_grad: odd k expected");
  const int64_t B = x.size(0), Hd = x.size(1), Wd = x.size(2), C = x.size(3), Cp = round16(C), R = B * Hd;
  const int64_t slot = ks * ks * Cp;
  std::vector<float> part(R * slot);
  const float* px = x.data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  float* pp = part.data();
  at::parallel_for(0, R, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / Hd, i = r % Hd;
      for (int64_t c0 = 0; c0 < C; c0 += 16) {
        if (ks == 3)
          dwconv_wgrad_row3(px + b * Hd * Wd * C, pg + r * Wd * C, C, c0, Hd, Wd, i, pp + r * slot);
        else
          dwconv_wgrad_row(px + b * Hd * Wd * C, pg + r * Wd * C, C, c0, Hd, Wd, ks, i, pp + r * slot);
      }
    }
  });
  auto gw = torch::empty({C, 1, ks, ks}, x.options());
  float* pw = gw.data_ptr<float>();
  std::vector<double> acc(slot, 0.0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t q = 0; q < slot; ++q) acc[q] += pp[r * slot + q];
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < ks * ks; ++t) pw[c * ks * ks + t] = static_cast<float>(acc[t * Cp + c]);
  return gw;
}

#else

bool avx512_available() { return false; }

#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gelu_forward", &gelu_forward, "GELU (erf) and optionally its derivative");
  m.def("layer_norm_forward", &layer_norm_forward, "LayerNorm over the last axis, no affine: (y, rstd)");
  m.def("layer_norm_backward", &layer_norm_backward, "input gradient of layer_norm_forward");
  m.def("ssim_forward", &ssim_forward, "per-plane mean SSIM and cs, and the maps for the backward");
  m.def("ssim_backward", &ssim_backward, "input gradient of ssim_forward's outputs (y constant)");
  m.def("upsample_add", &upsample_add, "bilinear x s up-sampling of NHWC frames plus an s x s table");
  m.def("avx512_available", &avx512_available, "whether the AVX-512 kernels (MLP, depth-wise conv) were compiled");
#if defined(__AVX512F__)
  m.def("mlp_forward", &mlp_forward, "a ConvNeXt block's [residual +] [mask *] fc2(GELU(fc1(LN(z))))",
        py::arg("z"), py::arg("w1"), py::arg("w2"), py::arg("residual") = py::none(), py::arg("mask") = py::none(),
        py::arg("normalize") = true, py::arg("eps") = 1e-6, py::arg("save") = false);
  m.def("head_forward", &head_forward, "sigmoid(w y + b) of NHWC rows as [B, 3, H, W] planes");
  m.def("dwconv_weight_grad", &dwconv_weight_grad, "weight gradient of dwconv_forward");
  m.def("dwconv_forward", &dwconv_forward, "depth-wise 'same' conv of NHWC frames");
  m.def("mlp_backward", &mlp_backward, "gradients of mlp_forward at z, fc1 and fc2");
#endif
}
