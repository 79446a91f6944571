// Channel concatenation, one input at a time (DenseNet's dense connections, Inception's branches), and its
// backward: copy_channels writes channels [srcOff, srcOff + ch) of src (N, srcC, H, W) into channels
// [dstOff, dstOff + ch) of dst (N, dstC, H, W), or adds them to what dst holds. Both tensors hold the same
// activation format; the sum is taken in float and rounded once to T, as the CPU reference adds in float.
// A plain copy moves the elements' bits unchanged.
//
// Kernels (each in every activation format, RN_ACT_FORMATS): copy_channels.

#include "common.cuh"

namespace {

// channel_copy walks the (N, ch, 1, HW) block being written, in dst's memory order for the layout.
template <typename T, rn::Layout L>
__device__ __forceinline__ void channel_copy(const T* src, T* dst, int N, int HW, int srcC, int dstC, int srcOff,
                                             int dstOff, int ch, int accumulate) {
  rn::grid_walk<L>(N, ch, 1, HW, [&](long long, const rn::WalkAct<L>& p) {
    const long long s = rn::act_index<L>(p.n(), srcOff + p.c(), 0, p.w(), srcC, 1, HW);
    const long long d = rn::act_index<L>(p.n(), dstOff + p.c(), 0, p.w(), dstC, 1, HW);
    if (accumulate) {
      dst[d] = rn::from_f32<T>(rn::to_f32(dst[d]) + rn::to_f32(src[s]));
    } else {
      dst[d] = src[s];
    }
  });
}

}  // namespace

#define COPY_CHANNELS(name, T, L, ...)                                                                           \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const T* src, T* dst, int N, int HW, int srcC,     \
                                                              int dstC, int srcOff, int dstOff, int ch, int acc) { \
    channel_copy<T, L>(src, dst, N, HW, srcC, dstC, srcOff, dstOff, ch, acc);                                    \
  }
RN_ACT_FORMATS(COPY_CHANNELS, copy_channels, )
