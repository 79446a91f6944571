// The residual add that closes a pre-activation unit (He et al. 2016, "Identity Mappings in Deep Residual
// Networks"): y = a + shortcut(z) after the unit's last convolution, with no batch norm after it, and the
// accumulating form of its shortcut gradient. The shortcut is the identity or option A (rn::Shortcut).
// Gradient writes without accumulation reuse residual_backward of batchnorm.cu.
//
// Kernels (each in every activation format, RN_ACT_FORMATS): residual_add_out, residual_backward_accumulate.

#include "common.cuh"

namespace {

// shortcut_sum writes y = a + shortcut(z), the sum taken in float and rounded once to T (y may be a).
template <typename T, rn::Layout L>
__device__ __forceinline__ void shortcut_sum(const T* a, const T* z, T* y, int N, int C, int H, int W, int Cz,
                                             int zs) {
  const rn::Shortcut<L> sc(C, H, W, Cz, zs);
  rn::grid_walk<L>(N, C, H, W, [&](long long i, const rn::WalkAct<L>& p) {
    float v = rn::to_f32(a[i]);
    const long long zi = sc.identity ? i : sc.index(p.n(), p.c(), p.h(), p.w());
    if (zi >= 0) v += rn::to_f32(z[zi]);
    y[i] = rn::from_f32<T>(v);
  });
}

// shortcut_grad_add adds shortcut^T(dy) into dz (N, Cz, H*zs, W*zs): each element of z that an output reads
// gets that output's gradient added, rounded once to T; the others keep their value.
template <typename T, rn::Layout L>
__device__ __forceinline__ void shortcut_grad_add(const T* dy, T* dz, int N, int C, int H, int W, int Cz, int zs) {
  const int off = (C - Cz) / 2;
  rn::grid_walk<L>(N, Cz, H * zs, W * zs, [&](long long i, const rn::WalkAct<L>& p) {
    if (p.h() % zs != 0 || p.w() % zs != 0) return;
    const float g = rn::to_f32(dy[rn::act_index<L>(p.n(), p.c() + off, p.h() / zs, p.w() / zs, C, H, W)]);
    dz[i] = rn::from_f32<T>(rn::to_f32(dz[i]) + g);
  });
}

}  // namespace

#define RESIDUAL_ADD_OUT(name, T, L, ...)                                                \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                 \
      name(const T* a, const T* z, T* y, int N, int C, int H, int W, int Cz, int zs) { \
    shortcut_sum<T, L>(a, z, y, N, C, H, W, Cz, zs);                                     \
  }
RN_ACT_FORMATS(RESIDUAL_ADD_OUT, residual_add_out, )

#define RESIDUAL_BACKWARD_ACCUMULATE(name, T, L, ...)                        \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                     \
      name(const T* dy, T* dz, int N, int C, int H, int W, int Cz, int zs) { \
    shortcut_grad_add<T, L>(dy, dz, N, C, H, W, Cz, zs);                     \
  }
RN_ACT_FORMATS(RESIDUAL_BACKWARD_ACCUMULATE, residual_backward_accumulate, )
