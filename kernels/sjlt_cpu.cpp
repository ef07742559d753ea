// SJLT forward on CPU (SPEC 3): y[b, h[r, j]] += (s[r, j] * scale) * x[b, j] for r < c, j < d.
// Zero entries of x cost (almost) nothing; products and sums are float32 whatever the input dtype.
// Rows are independent, so at::parallel_for splits the batch (8-row panels, then single rows) and each
// row's summation order is fixed: the result is deterministic whatever the thread count or batch.
// sjlt_forward_masked is GraSS's mask + SJLT fused: the same scatter over the columns cols[j] of x only,
// equal bit for bit to sjlt_forward(x[:, cols]) without the [B, n] copy.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace {

// A block of rows walks the columns tile by tile so the c * kTileCols table entries of a tile are
// read from memory once per block instead of once per row (the tables are as large as one x row).
constexpr int64_t kTileCols = 2048;
constexpr int64_t kBlockRows = 8;

// Every column of a tile: the cheapest loop when almost all entries are nonzero (a zero adds exactly 0).
template <typename scalar_t, typename index_t, typename sign_t>
inline void scatter_all(const scalar_t* __restrict__ xb, const index_t* __restrict__ hr,
                        const sign_t* __restrict__ sr, float* __restrict__ yb, int64_t len, float scale) {
  for (int64_t j = 0; j < len; ++j) {
    // (x * scale) * s is the reference's x * (s * scale) exactly when s = +-1 or scale = 1
    yb[hr[j]] += static_cast<float>(sr[j]) * (static_cast<float>(xb[j]) * scale);
  }
}

// One row's tile [j0, j1): count the nonzeros (a vectorizable pass), skip an all-zero tile, scatter a
// mostly-dense tile whole, and otherwise compact the nonzero positions without branches first: a
// per-element `if (x == 0)` mispredicts on mixed sparsity and then costs more than the scatter.
// Each output bucket receives pass r before pass r + 1 within a tile, in j order.
template <typename scalar_t, typename index_t, typename sign_t>
inline void scatter_tile(const scalar_t* __restrict__ xb, const index_t* __restrict__ h,
                         const sign_t* __restrict__ s, float* __restrict__ yb, int64_t j0, int64_t j1,
                         int64_t d, int64_t c, float scale, int32_t* __restrict__ cols) {
  const int64_t len = j1 - j0;
  xb += j0;
  int64_t nnz = 0;
  for (int64_t j = 0; j < len; ++j) nnz += (static_cast<float>(xb[j]) != 0.0f);
  if (nnz == 0) return;
  if (4 * nnz >= 3 * len) {
    for (int64_t r = 0; r < c; ++r) scatter_all(xb, h + r * d + j0, s + r * d + j0, yb, len, scale);
    return;
  }
  int32_t n = 0;
  for (int32_t j = 0; j < static_cast<int32_t>(len); ++j) {
    cols[n] = j;
    n += (static_cast<float>(xb[j]) != 0.0f);
  }
  for (int64_t r = 0; r < c; ++r) {
    const index_t* __restrict__ hr = h + r * d + j0;
    const sign_t* __restrict__ sr = s + r * d + j0;
    for (int32_t i = 0; i < n; ++i) {
      const int32_t j = cols[i];
      yb[hr[j]] += static_cast<float>(sr[j]) * (static_cast<float>(xb[j]) * scale);
    }
  }
}

// Rows one at a time (the B % kPanelRows rows left over by the panels). x rows have stride d; the tables are
// [c, n]. cols == nullptr: column j of the tables is x's column j (n == d). Otherwise the tables' column j is x's
// column cols[j] (the fused mask + SJLT): a tile's n columns are gathered into a float row first, so the scatter
// is the one sjlt(x[:, cols]) runs, term for term.
template <typename scalar_t, typename index_t, typename sign_t>
void scatter_rows(const scalar_t* x, const index_t* h, const sign_t* s, float* y, int64_t row_begin,
                  int64_t row_end, int64_t d, int64_t n, const int64_t* cols, int64_t c, int64_t k, float scale) {
  int32_t nz[kTileCols];  // nonzero positions of the current tile
  float gathered[kTileCols];
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kBlockRows) {
    const int64_t r1 = std::min(r0 + kBlockRows, row_end);
    for (int64_t j0 = 0; j0 < n; j0 += kTileCols) {
      const int64_t j1 = std::min(j0 + kTileCols, n);
      for (int64_t b = r0; b < r1; ++b) {
        if (cols == nullptr) {
          scatter_tile(x + b * d, h, s, y + b * k, j0, j1, n, c, scale, nz);
        } else {
          const scalar_t* xb = x + b * d;
          for (int64_t j = j0; j < j1; ++j) gathered[j - j0] = static_cast<float>(xb[cols[j]]);
          scatter_tile(gathered, h + j0, s + j0, y + b * k, 0, j1 - j0, n, c, scale, nz);
        }
      }
    }
  }
}

// Panels of kPanelRows rows (B >= kPanelRows): the panel's tile of x is transposed into buf [cols][rows] so
// one column's values are contiguous, and column j then adds s_j * x[:, j] to acc[h_j][0:rows], one 8-wide
// vector update in place of kPanelRows scattered scalar ones; the tables are read once per panel. acc is
// the panel's output transposed, [k][rows], written back to y at the end. An all-zero tile is skipped;
// single zeros are not: scattering a mostly-zero tile's nonzeros row by row measured slower than the whole
// panel update even at 99 % zeros (d=1e6, k=4096, 64 rows: 59 vs 41 ms). Each bucket still receives its
// terms pass by pass within a tile and in j order, so the result equals scatter_rows bit for bit.
constexpr int64_t kPanelRows = 8;  // measured against 4 and 16 (16: no faster, twice the accumulator)

// One panel column as a vector: gcc and clang lower it to SSE / AVX / NEON ops. Written as a plain
// `o[b] += s * t[b]` loop, gcc left the update scalar (8 mulss + 8 addss), which measured 1.7x slower
// overall. aligned(4): buf and acc rows need no more than float alignment. The build passes
// -ffp-contract=off, so a * b + c stays two roundings (no FMA) and equals the row path.
typedef float PanelColumn __attribute__((vector_size(kPanelRows * sizeof(float)), aligned(4)));

#if defined(__SSE2__)
// Four consecutive inputs as floats, exactly as static_cast<float> gives them: fp32 as is, bfloat16 by
// putting its 16 bits on top of a zero low half (bf16 is the top half of an fp32), fp16 below.
inline __m128 load4(const float* p) { return _mm_loadu_ps(p); }
inline __m128 load4(const at::BFloat16* p) {
  const __m128i bits = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), bits));
}
// fp16 without F16C (not in the x86-64 baseline): move exponent + mantissa to fp32's place (<< 13), then
// one multiply by 2^(127 - 15) re-biases the exponent, which also turns fp16 subnormals (fp32 subnormals
// after the shift) into the right normal fp32 exactly; Inf / NaN (exponent 31) get fp32's all-ones
// exponent ORed in, and the sign goes back on top. Exact for all 65536 inputs (tested); not used while
// denormals-are-zero is on (torch.set_flush_denormal(True)), which would read fp16 subnormals as 0.
inline __m128 load4(const at::Half* p) {
  const __m128i h = _mm_unpacklo_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)), _mm_setzero_si128());
  const __m128i magnitude = _mm_and_si128(h, _mm_set1_epi32(0x7fff));
  const __m128i sign = _mm_slli_epi32(_mm_xor_si128(h, magnitude), 16);
  const __m128 rebiased = _mm_mul_ps(_mm_castsi128_ps(_mm_slli_epi32(magnitude, 13)),
                                     _mm_castsi128_ps(_mm_set1_epi32((127 + 127 - 15) << 23)));
  const __m128i inf_nan = _mm_and_si128(_mm_cmpgt_epi32(magnitude, _mm_set1_epi32(0x7bff)), _mm_set1_epi32(0xff << 23));
  return _mm_or_ps(rebiased, _mm_castsi128_ps(_mm_or_si128(sign, inf_nan)));
}
template <typename scalar_t>
constexpr bool kHasLoad4 = std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, at::BFloat16> ||
                           std::is_same_v<scalar_t, at::Half>;
#endif

// buf[j][b] = x[r0 + b, j0 + j] * scale for the tile's len columns; returns whether any entry is nonzero.
template <typename scalar_t>
inline bool transpose_tile(const scalar_t* __restrict__ xp, int64_t d, int64_t len, float scale,
                           float* __restrict__ buf) {
  constexpr int64_t R = kPanelRows;
  int64_t j = 0;
  bool any = false;
#if defined(__SSE2__)
  // fp32 / bf16 / fp16 input: 4x4 register transposes (8 rows = two 4-row halves), 1.25x (fp32), 2x (bf16)
  // and 3x (fp16) faster overall than the scalar loop below, which is what fp64 and other ISAs run.
  // with denormals-are-zero set (MXCSR bit 6) the fp16 widening would read subnormals as 0, so fp16 then
  // takes the scalar loop
  if constexpr (kHasLoad4<scalar_t>) {
    if (!std::is_same_v<scalar_t, at::Half> || !(_mm_getcsr() & 0x0040)) {
      const __m128 sc = _mm_set1_ps(scale), zero = _mm_setzero_ps();
      __m128 nonzero = zero;
      for (; j + 4 <= len; j += 4) {
        for (int64_t half = 0; half < R / 4; ++half) {
          const scalar_t* p = xp + 4 * half * d + j;
          __m128 a = load4(p), b = load4(p + d), c = load4(p + 2 * d), e = load4(p + 3 * d);
          // NaN != 0 as in the scalar test, so a NaN tile is not skipped
          nonzero = _mm_or_ps(nonzero, _mm_or_ps(_mm_or_ps(_mm_cmpneq_ps(a, zero), _mm_cmpneq_ps(b, zero)),
                                                 _mm_or_ps(_mm_cmpneq_ps(c, zero), _mm_cmpneq_ps(e, zero))));
          _MM_TRANSPOSE4_PS(a, b, c, e);
          float* t = buf + j * R + 4 * half;
          _mm_storeu_ps(t, _mm_mul_ps(a, sc));
          _mm_storeu_ps(t + R, _mm_mul_ps(b, sc));
          _mm_storeu_ps(t + 2 * R, _mm_mul_ps(c, sc));
          _mm_storeu_ps(t + 3 * R, _mm_mul_ps(e, sc));
        }
      }
      any = _mm_movemask_ps(nonzero) != 0;
    }
  }
#endif
  for (; j < len; ++j) {  // column by column: each buf write fills one contiguous run
    float* __restrict__ t = buf + j * R;
    for (int64_t b = 0; b < R; ++b) {
      const float v = static_cast<float>(xp[b * d + j]);
      any |= (v != 0.0f);
      t[b] = v * scale;
    }
  }
  return any;
}

// buf[j][b] = x[r0 + b, cols[j]] * scale for the tile's len gathered columns (cols sorted, so each of the 8
// rows is read front to back); returns whether any entry is nonzero. Scalar loads: the columns are not
// contiguous (copying each row's selection out first and reusing the SSE transpose measured slower).
template <typename scalar_t>
inline bool transpose_tile_cols(const scalar_t* __restrict__ xp, int64_t d, const int64_t* __restrict__ cols,
                                int64_t len, float scale, float* __restrict__ buf) {
  constexpr int64_t R = kPanelRows;
  bool any = false;
  for (int64_t j = 0; j < len; ++j) {
    float* __restrict__ t = buf + j * R;
    const scalar_t* __restrict__ col = xp + cols[j];
    for (int64_t b = 0; b < R; ++b) {
      const float v = static_cast<float>(col[b * d]);
      any |= (v != 0.0f);
      t[b] = v * scale;
    }
  }
  return any;
}

// How many columns ahead the update prefetches its accumulator row (for writing): acc ([k][8] floats,
// 128 KB at k = 4096) outgrows L1, and without the hint each update waits for its line (1.1-1.2x).
constexpr int64_t kPrefetchAhead = 16;

template <typename scalar_t, typename index_t, typename sign_t>
void scatter_panel(const scalar_t* x, const index_t* h, const sign_t* s, float* y, int64_t r0, int64_t d,
                   int64_t n, const int64_t* cols, int64_t c, int64_t k, float scale, float* __restrict__ buf,
                   float* __restrict__ acc) {
  constexpr int64_t R = kPanelRows;
  std::fill(acc, acc + k * R, 0.0f);
  for (int64_t j0 = 0; j0 < n; j0 += kTileCols) {
    const int64_t len = std::min(kTileCols, n - j0);
    const bool any = cols == nullptr ? transpose_tile(x + r0 * d + j0, d, len, scale, buf)
                                     : transpose_tile_cols(x + r0 * d, d, cols + j0, len, scale, buf);
    if (!any) continue;
    for (int64_t r = 0; r < c; ++r) {
      const index_t* __restrict__ hr = h + r * n + j0;
      const sign_t* __restrict__ sr = s + r * n + j0;
      for (int64_t j = 0; j < len; ++j) {
        if (j + kPrefetchAhead < len) __builtin_prefetch(acc + hr[j + kPrefetchAhead] * R, 1, 3);
        const float sv = static_cast<float>(sr[j]);
        *reinterpret_cast<PanelColumn*>(acc + hr[j] * R) += sv * *reinterpret_cast<const PanelColumn*>(buf + j * R);
      }
    }
  }
  for (int64_t b = 0; b < R; ++b) {
    float* __restrict__ yb = y + (r0 + b) * k;
    for (int64_t q = 0; q < k; ++q) yb[q] = acc[q * R + b];
  }
}

template <typename scalar_t, typename index_t, typename sign_t>
void scatter_all_rows(const scalar_t* x, const index_t* h, const sign_t* s, float* y, int64_t B, int64_t d,
                      int64_t n, const int64_t* cols, int64_t c, int64_t k, float scale) {
  const int64_t panels = B / kPanelRows;
  at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(kTileCols * kPanelRows), acc(k * kPanelRows);
    for (int64_t p = begin; p < end; ++p) {
      scatter_panel(x, h, s, y, p * kPanelRows, d, n, cols, c, k, scale, buf.data(), acc.data());
    }
  });
  at::parallel_for(panels * kPanelRows, B, 1, [&](int64_t begin, int64_t end) {
    scatter_rows(x, h, s, y, begin, end, d, n, cols, c, k, scale);
  });
}

template <typename scalar_t, typename index_t>
void launch(const at::Tensor& x, const at::Tensor& h, const at::Tensor& s, at::Tensor& y, float scale,
            const int64_t* cols) {
  const int64_t B = x.size(0), d = x.size(1), c = h.size(0), n = h.size(1), k = y.size(1);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const index_t* hp = h.const_data_ptr<index_t>();
  float* yp = y.data_ptr<float>();
  if (s.scalar_type() == at::kChar) {
    scatter_all_rows(xp, hp, s.const_data_ptr<int8_t>(), yp, B, d, n, cols, c, k, scale);
  } else {
    scatter_all_rows(xp, hp, s.const_data_ptr<float>(), yp, B, d, n, cols, c, k, scale);
  }
}

void check_tables(const at::Tensor& x, const at::Tensor& h, const at::Tensor& s, int64_t k) {
  TORCH_CHECK(x.device().is_cpu() && h.device().is_cpu() && s.device().is_cpu(), "sjlt_forward: CPU tensors only");
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous(), "sjlt_forward: x must be a contiguous [B, d] tensor");
  TORCH_CHECK(h.dim() == 2 && h.is_contiguous() && s.sizes() == h.sizes() && s.is_contiguous(),
              "sjlt_forward: h and s must be contiguous [c, d] tensors of the same shape");
  TORCH_CHECK(h.scalar_type() == at::kLong || h.scalar_type() == at::kInt, "sjlt_forward: h must be int64 or int32");
  TORCH_CHECK(s.scalar_type() == at::kFloat || s.scalar_type() == at::kChar, "sjlt_forward: s must be float32 or int8");
  TORCH_CHECK(k > 0, "sjlt_forward: k must be positive");
}

at::Tensor project(const at::Tensor& x, const at::Tensor& h, const at::Tensor& s, int64_t k, double scale,
                   const int64_t* cols) {
  at::Tensor y = at::zeros({x.size(0), k}, x.options().dtype(at::kFloat));
  if (x.numel() == 0 || h.numel() == 0) return y;
  auto [lo, hi] = at::aminmax(h);  // an out-of-range bucket would write outside y
  TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < k, "sjlt_forward: bucket index outside [0, k)");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "sjlt_forward", [&] {
    if (h.scalar_type() == at::kLong) {
      launch<scalar_t, int64_t>(x, h, s, y, static_cast<float>(scale), cols);
    } else {
      launch<scalar_t, int32_t>(x, h, s, y, static_cast<float>(scale), cols);
    }
  });
  return y;
}

at::Tensor sjlt_forward(const at::Tensor& x, const at::Tensor& h, const at::Tensor& s, int64_t k, double scale) {
  check_tables(x, h, s, k);
  TORCH_CHECK(h.size(1) == x.size(1), "sjlt_forward: tables have d=", h.size(1), ", x has d=", x.size(1));
  return project(x, h, s, k, scale, nullptr);
}

// GraSS's two stages in one pass (SPEC 3): sjlt(x[:, cols]) without materializing x[:, cols]. cols [n] int64,
// distinct, in [0, d); tables [c, n]. Reads only the selected columns' cache lines and scatters n terms per row.
at::Tensor sjlt_forward_masked(const at::Tensor& x, const at::Tensor& cols, const at::Tensor& h, const at::Tensor& s,
                               int64_t k, double scale) {
  check_tables(x, h, s, k);
  TORCH_CHECK(cols.device().is_cpu() && cols.dim() == 1 && cols.is_contiguous() && cols.scalar_type() == at::kLong,
              "sjlt_forward_masked: cols must be a contiguous 1-D int64 CPU tensor");
  TORCH_CHECK(h.size(1) == cols.size(0), "sjlt_forward_masked: tables have n=", h.size(1), ", cols has ", cols.size(0));
  if (cols.numel() > 0) {
    auto [lo, hi] = at::aminmax(cols);  // an out-of-range column would read outside x
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < x.size(1), "sjlt_forward_masked: column outside [0, d)");
  }
  return project(x, h, s, k, scale, cols.const_data_ptr<int64_t>());
}

}  // namespace

TORCH_LIBRARY(grass_sjlt, m) {
  m.def("sjlt_forward(Tensor x, Tensor h, Tensor s, int k, float scale) -> Tensor");
  m.def("sjlt_forward_masked(Tensor x, Tensor cols, Tensor h, Tensor s, int k, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(grass_sjlt, CPU, m) {
  m.impl("sjlt_forward", &sjlt_forward);
  m.impl("sjlt_forward_masked", &sjlt_forward_masked);
}
