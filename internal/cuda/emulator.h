// CUDA shims that let g++ compile kernels/*.cu for the CPU emulator (see emulator.cpp). Only what the kernels
// use is provided: the thread and block indices, __syncthreads, warp shuffles, __threadfence, atomicAdd,
// __ldcg and the correctly rounded float intrinsics (IEEE float arithmetic on the CPU rounds the same way).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__
// Blocks run one after another, so one static instance of each shared variable serves every block.
#define __shared__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
extern dim3 threadIdx;
extern dim3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;

// The 256 threads of a block are fibers on one OS thread (emulator.cpp); a barrier hands control back to the
// scheduler, which resumes the waiting fibers once every live fiber of the block (or of the warp) waits.
void emu_wait_block();
void emu_wait_warp();
extern uint64_t emu_warp_slot[8][32];

inline void __syncthreads() { emu_wait_block(); }

template <typename T>
inline T emu_shfl(T v, int src) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  emu_warp_slot[w][lane] = bits;
  emu_wait_warp();
  T r = v;
  if (src >= 0 && src < 32) {
    const uint64_t b = emu_warp_slot[w][src];
    std::memcpy(&r, &b, sizeof(T));
  }
  emu_wait_warp();
  return r;
}

template <typename T>
inline T __shfl_down_sync(unsigned, T v, int o) {
  return emu_shfl(v, (int)(threadIdx.x & 31) + o);
}

template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int o) {
  return emu_shfl(v, (int)(threadIdx.x & 31) ^ o);
}

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }

template <typename T>
inline T __ldcg(const T* p) {
  T v;
  __atomic_load(p, &v, __ATOMIC_SEQ_CST);
  return v;
}

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }

// 16-bit floats: storage types with the conversions of cuda_bf16.h and cuda_fp16.h, bit for bit: round to
// nearest even, subnormals kept, overflow to infinity, and every NaN becomes the canonical 0x7fff as the
// GPU's conversions make it.
struct __nv_bfloat16 {
  uint16_t x;
};
struct __half {
  uint16_t x;
};

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t u = (uint32_t)h.x << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {0x7fff};
  u += 0x7fffu + ((u >> 16) & 1u);
  return {(uint16_t)(u >> 16)};
}

inline float __half2float(__half h) {
  _Float16 v;
  std::memcpy(&v, &h.x, 2);
  return (float)v;
}

inline __half __float2half_rn(float f) {
  if (std::isnan(f)) return {0x7fff};
  const _Float16 v = (_Float16)f;  // IEEE conversion: round to nearest even
  __half h;
  std::memcpy(&h.x, &v, 2);
  return h;
}

using std::isnan;
using std::max;
using std::min;
