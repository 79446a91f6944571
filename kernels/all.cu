// The one translation unit that nvcc compiles into internal/cuda/kernels.fatbin: every family file is
// included here, so the fatbin needs neither relocatable device code nor a device link step.
//
//   nvcc -fatbin -O3 -std=c++17 -ftz=false -prec-div=true -prec-sqrt=true -fmad=true \
//     -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
//     -gencode arch=compute_90,code=compute_90 -o internal/cuda/kernels.fatbin kernels/all.cu
//
// (`make kernels`; its prerequisites are kernels/*.cu and kernels/*.cuh). Each family file also compiles
// on its own, which is how an editor or `nvcc -c kernels/pooling.cu` checks one family. A new family file
// must be added below and its kernels to the table in internal/cuda/kernels.go.
//
// No fast math (no --use_fast_math, no approximate intrinsics such as __expf, __fdividef or rsqrtf): the
// kernels' results are exact where their comments say so, identical between the fused and unfused paths,
// and the same from run to run. TestKernelsBuildWithoutFastMath keeps it so.

#include "batchnorm.cu"
#include "check.cu"
#include "concat.cu"
#include "convert.cu"
#include "dropout.cu"
#include "gate.cu"
#include "linear.cu"
#include "loss.cu"
#include "pooling.cu"
#include "residual.cu"
#include "scaled_residual.cu"
#include "sgd.cu"
