// Fused CPU kernels for training and decoding: LayerNorm (no affine), the exact erf GELU, and the SSIM
// terms of the MS-SSIM training loss.
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

// The loops, on raw ranges so that the compiler sees no aliasing and vectorises them.

void gelu_range(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ d, int64_t n) {
  constexpr float kInvSqrt2Pi = 0.39894228040143268f;
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gelu_forward", &gelu_forward, "GELU (erf) and optionally its derivative");
  m.def("layer_norm_forward", &layer_norm_forward, "LayerNorm over the last axis, no affine: (y, rstd)");
  m.def("layer_norm_backward", &layer_norm_backward, "input gradient of layer_norm_forward");
  m.def("ssim_forward", &ssim_forward, "per-plane mean SSIM and cs, and the maps for the backward");
  m.def("ssim_backward", &ssim_backward, "input gradient of ssim_forward's outputs (y constant)");
}
