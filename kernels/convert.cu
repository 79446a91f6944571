// Convolution filters between the parameter table's f32 (Cout, Cin, KH, KW) and the format cuDNN convolves
// with on a device whose activations are bf16, f16 or NHWC: cuDNN wants the filter in the activations' data
// type, and for channels-last in KRSC order, (Cout, KH, KW, Cin).
//
// filter_to_<type>_<layout> writes the device's private copy of a weight: each f32 element rounded to the
// type (round to nearest even, exact for f32) at its place in the layout. filter_from_<type>_<layout>
// turns a filter gradient cuDNN wrote in that format back into f32 (Cout, Cin, KH, KW): widening is exact,
// so the gradient is cuDNN's, rounded once to the type. Both overwrite their destination.
// A grouped convolution's filter is (Cout, Cin/groups, KH, KW): the launcher passes Cin/groups as C, and
// KRSC is then (Cout, KH, KW, Cin/groups), the order cuDNN's grouped channels-last filter descriptor has.
//
// An activation (N, C, H, W) converts the same way, N standing for Cout and H*W for KH*KW (NHWC being
// KRSC's order): activation_to_<type>_<layout> and activation_from_<type>_<layout> are Upload's and
// Download's conversion of a tensor held in another format from and to the f32 NCHW values the host sees.
//
// Kernels: filter_to_f32_nhwc, filter_to_bf16_nchw, filter_to_bf16_nhwc, filter_to_f16_nchw,
// filter_to_f16_nhwc, filter_from_f32_nhwc, filter_from_bf16_nchw, filter_from_bf16_nhwc,
// filter_from_f16_nchw, filter_from_f16_nhwc, and activation_to_* and activation_from_* of the same
// formats. (f32 (Cout, Cin, KH, KW) is the table's own format and
// needs neither.)

#include "common.cuh"

namespace {

// krsc is the index in (Cout, KH, KW, Cin) order of the element at flat index i of (Cout, Cin, KH, KW),
// where C = Cin and RS = KH*KW.
__device__ __forceinline__ long long krsc(long long i, int C, int RS) {
  const long long k = i / ((long long)C * RS);
  const int rest = (int)(i - k * C * RS);
  const int c = rest / RS, rs = rest - c * RS;
  return (k * RS + rs) * C + c;
}

// filter_to writes w (Cout, Cin, KH, KW), n elements, into out as T, in KRSC order when nhwc is set. The
// threads walk the source in order: the reads coalesce, the permuted writes do not, which costs little on
// tensors this small (one pass over the weights per step).
template <typename T, bool nhwc>
__device__ __forceinline__ void filter_to(const float* w, T* out, int C, int RS, long long n) {
  const long long stride = rn::grid_stride();
  for (long long i = rn::grid_start(); i < n; i += stride) {
    out[nhwc ? krsc(i, C, RS) : i] = rn::from_f32<T>(w[i]);
  }
}

// filter_from is the inverse: dw (Cout, Cin, KH, KW) in f32 from g, a gradient of type T in the layout.
template <typename T, bool nhwc>
__device__ __forceinline__ void filter_from(const T* g, float* dw, int C, int RS, long long n) {
  const long long stride = rn::grid_stride();
  for (long long i = rn::grid_start(); i < n; i += stride) {
    dw[i] = rn::to_f32(g[nhwc ? krsc(i, C, RS) : i]);
  }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_to_f32_nhwc(const float* w, float* out, int C, int RS, long long n) {
  filter_to<float, true>(w, out, C, RS, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_to_bf16_nchw(const float* w, rn::bf16* out, int C, int RS, long long n) {
  filter_to<rn::bf16, false>(w, out, C, RS, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_to_bf16_nhwc(const float* w, rn::bf16* out, int C, int RS, long long n) {
  filter_to<rn::bf16, true>(w, out, C, RS, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_to_f16_nchw(const float* w, rn::f16* out, int C, int RS, long long n) {
  filter_to<rn::f16, false>(w, out, C, RS, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_to_f16_nhwc(const float* w, rn::f16* out, int C, int RS, long long n) {
  filter_to<rn::f16, true>(w, out, C, RS, n);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_from_f32_nhwc(const float* g, float* dw, int C, int RS, long long n) {
  filter_from<float, true>(g, dw, C, RS, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_from_bf16_nchw(const rn::bf16* g, float* dw, int C, int RS, long long n) {
  filter_from<rn::bf16, false>(g, dw, C, RS, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_from_bf16_nhwc(const rn::bf16* g, float* dw, int C, int RS, long long n) {
  filter_from<rn::bf16, true>(g, dw, C, RS, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_from_f16_nchw(const rn::f16* g, float* dw, int C, int RS, long long n) {
  filter_from<rn::f16, false>(g, dw, C, RS, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    filter_from_f16_nhwc(const rn::f16* g, float* dw, int C, int RS, long long n) {
  filter_from<rn::f16, true>(g, dw, C, RS, n);
}

// Activations: Upload and Download of a tensor in another format.

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_to_f32_nhwc(const float* x, float* y, int C, int HW, long long n) {
  filter_to<float, true>(x, y, C, HW, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_to_bf16_nchw(const float* x, rn::bf16* y, int C, int HW, long long n) {
  filter_to<rn::bf16, false>(x, y, C, HW, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_to_bf16_nhwc(const float* x, rn::bf16* y, int C, int HW, long long n) {
  filter_to<rn::bf16, true>(x, y, C, HW, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_to_f16_nchw(const float* x, rn::f16* y, int C, int HW, long long n) {
  filter_to<rn::f16, false>(x, y, C, HW, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_to_f16_nhwc(const float* x, rn::f16* y, int C, int HW, long long n) {
  filter_to<rn::f16, true>(x, y, C, HW, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_from_f32_nhwc(const float* x, float* y, int C, int HW, long long n) {
  filter_from<float, true>(x, y, C, HW, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_from_bf16_nchw(const rn::bf16* x, float* y, int C, int HW, long long n) {
  filter_from<rn::bf16, false>(x, y, C, HW, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_from_bf16_nhwc(const rn::bf16* x, float* y, int C, int HW, long long n) {
  filter_from<rn::bf16, true>(x, y, C, HW, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_from_f16_nchw(const rn::f16* x, float* y, int C, int HW, long long n) {
  filter_from<rn::f16, false>(x, y, C, HW, n);
}
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    activation_from_f16_nhwc(const rn::f16* x, float* y, int C, int HW, long long n) {
  filter_from<rn::f16, true>(x, y, C, HW, n);
}
