// The bias half of the fully connected layer y (N, Out) = x (N, In) * w (Out, In)^T + b; the GEMMs run on
// cuBLAS. The bias gradient sums each column over the rows in row order, in double: bit-for-bit the CPU
// reference's sum.
//
// Kernels: linear_bias_add, linear_bias_grad.

#include "common.cuh"

// linear_bias_add: y[r, o] += b[o]. Grid-stride over y.
extern "C" __global__ void __launch_bounds__(RN_BLOCK) linear_bias_add(float* y, const float* b, int N, int Out) {
  const long long total = (long long)N * Out;
  const long long stride = rn::grid_stride();
  long long i = rn::grid_start();
  if (i >= total) return;
  rn::Walk2 p;
  p.init(i, stride, Out);
  for (; i < total; i += stride, p.next()) y[i] += b[p.i];
}

// linear_bias_grad: db[o] = sum over r of dy[r, o]. One thread per column; neighbouring threads read
// neighbouring columns, so every row is read coalesced.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    linear_bias_grad(const float* dy, float* db, int N, int Out) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= Out) return;
  double s = 0;
  for (int r = 0; r < N; r++) s += dy[(long long)r * Out + o];
  db[o] = (float)s;
}
