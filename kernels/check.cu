// Checks of tensor values on the device, so that a training step's divergence check reads back a few
// bytes instead of every tensor.
//
// Kernels: find_nonfinite.

#include <float.h>

#include "common.cuh"

// find_nonfinite sets *flag to 1 when x[0, n) holds a NaN or an infinity, or, with non_negative, a
// negative value (-0 is not negative); it leaves *flag alone otherwise, so the caller clears the flags of
// a check before its launches. Grid-stride. Every thread that finds a bad value stores the same 1, so the
// result is exact whatever the order; no value is rounded or summed.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    find_nonfinite(const float* x, long long n, int non_negative, int* flag) {
  // NaN fails both comparisons; infinities and (with non_negative) negative values fail one.
  const float lo = non_negative ? 0.0f : -FLT_MAX;
  bool bad = false;
  const long long stride = rn::grid_stride();
  for (long long i = rn::grid_start(); i < n; i += stride) {
    const float v = x[i];
    bad |= !(v >= lo && v <= FLT_MAX);
  }
  if (bad) *flag = 1;
}
