#pragma once
// What the dispatcher (norm.cpp) hands to a backend: contiguous tensors viewed as [rows, dim].
#include <cstdint>

namespace assay::fused_norm::detail {

struct ForwardProblem {
  const float* x;
  const float* weight;  // null: ones
  const float* bias;    // null: zeros
  void* y;              // bf16 or fp16 bits
  float* mean;
  float* rstd;
  int64_t rows, dim;
  float eps;
  bool rms;
  bool fp16;  // y (and dy) are fp16, else bf16
};

struct BackwardProblem {
  const void* dy;  // bf16 or fp16 bits
  const float* x;
  const float* mean;
  const float* rstd;
  const float* weight;  // null: ones
  float* dx;
  float* dweight;  // null: not wanted
  float* dbias;    // null: not wanted
  int64_t rows, dim;
  bool rms;
  bool fp16;
};

// Columns per lane step in both backends' row sums (the CUDA kernel loads 4 floats at once where it can): the
// order of float32 additions depends on it, and both backends must add in the same order.
inline int64_t group_width(int64_t dim) { return dim % 4 == 0 ? 4 : 1; }

void forward_cpu(const ForwardProblem& p);
void backward_cpu(const BackwardProblem& p);

// CUDA (built with CUDA only). The backward sums the weight/bias gradients into backward_cuda_partials(...) partial
// sums of 2 * dim floats each (`partials`, scratch), then adds those up in a fixed order: no atomics, so the result
// does not depend on timing.
void forward_cuda(const ForwardProblem& p, void* stream);
int64_t backward_cuda_partials(int64_t rows, int64_t dim);
void backward_cuda(const BackwardProblem& p, float* partials, void* stream);

}  // namespace assay::fused_norm::detail
