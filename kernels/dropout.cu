// Inverted dropout (Srivastava et al. 2014; in Wide ResNets between a unit's two convolutions): y = x *
// 1/(1-p) where the mask keeps an element, 0 where it drops it. The forward and the backward are the same
// kernel on (x, y) and (dy, dx): the mask is drawn again from a counter-based hash instead of being
// stored, so the backward drops exactly what the forward dropped.
//
// Element (n, c, h, w) is kept when the top 24 bits of mix64(key + (e+1) * golden) are >= threshold, e its
// index in the NCHW order whatever the layout, key and threshold as backend.DropoutParams.Mask computes
// them: every activation format and the CPU draw the same mask. The product is taken in float and rounded
// once to T.
//
// Kernels (each in every activation format, RN_ACT_FORMATS): dropout_apply.

#include "common.cuh"

namespace {

constexpr unsigned long long kGolden = 0x9E3779B97F4A7C15ull;

// mix64 is SplitMix64's finaliser, backend.mix64.
__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <typename T, rn::Layout L>
__device__ __forceinline__ void dropout_mask(const T* x, T* y, int N, int C, int H, int W, unsigned long long key,
                                             unsigned threshold, float scale) {
  rn::grid_walk<L>(N, C, H, W, [&](long long i, const rn::WalkAct<L>& p) {
    const unsigned long long e =
        (((unsigned long long)p.n() * C + p.c()) * H + p.h()) * (unsigned long long)W + p.w();
    const unsigned draw = (unsigned)(mix64(key + (e + 1ull) * kGolden) >> 40);
    y[i] = rn::from_f32<T>(draw >= threshold ? __fmul_rn(rn::to_f32(x[i]), scale) : 0.f);
  });
}

}  // namespace

#define DROPOUT_APPLY(name, T, L, ...)                                                                    \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                  \
      name(const T* x, T* y, int N, int C, int H, int W, long long key, int threshold, float scale) { \
    dropout_mask<T, L>(x, y, N, C, H, W, (unsigned long long)key, (unsigned)threshold, scale);            \
  }
RN_ACT_FORMATS(DROPOUT_APPLY, dropout_apply, )
