#pragma once
/// @file Layers whose arithmetic a precision scheme can replace. A model builds its matrix products from
/// assay::Linear and its normalizations from assay::Norm (instead of torch::nn::Linear / at::layer_norm), so
/// that a scheme such as `mx` reaches every GEMM, forward and backward, without copying the model: the
/// scheme's Precision::apply walks model.modules() and sets each layer's `kernel`.
#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>

// Exported so that dynamic_cast finds these classes from any plugin (plugins hide their own symbols).
#define ASSAY_LAYER_API __attribute__((visibility("default")))

namespace assay {

/// Computes y = x W^T + b for a precision scheme. Must be differentiable in x, weight and bias.
class ASSAY_LAYER_API LinearKernel {
 public:
  virtual ~LinearKernel();
  /// x [..., in], weight [out, in], bias [out] or undefined.
  virtual at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const = 0;
};

/// Computes a normalization over the last dimension for a precision scheme. Must be differentiable.
class ASSAY_LAYER_API NormKernel {
 public:
  virtual ~NormKernel();
  /// rms = false: LayerNorm; true: RMSNorm (bias is then undefined). weight/bias may be undefined.
  virtual at::Tensor norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps,
                          bool rms) const = 0;
};

/// A linear layer: parameters `weight` [out, in] and `bias` [out] (names and default initialization as
/// torch::nn::Linear, so checkpoints and seeds carry over).
class ASSAY_LAYER_API LinearImpl : public torch::nn::Cloneable<LinearImpl> {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;
  /// What computes the product; null = at::linear in the parameters' dtype. Set by precision schemes.
  std::shared_ptr<const LinearKernel> kernel;

 private:
  int64_t in_features_, out_features_;
  bool has_bias_;
};
TORCH_MODULE(Linear);

/// LayerNorm or RMSNorm over the last dimension, with optional affine `weight` (ones) and `bias` (zeros).
struct NormOptions {
  int64_t dim = 0;        ///< size of the normalized (last) dimension
  bool rms = false;       ///< RMSNorm instead of LayerNorm (no bias)
  bool affine = true;     ///< learnable weight
  bool bias = true;       ///< learnable bias (LayerNorm with affine only)
  double eps = 1e-5;      ///< added to the variance
  /// Under autocast to bf16/fp16, return the output in that dtype rather than float32. Right for a norm whose one
  /// consumer is a matrix product (it would cast the output anyway: same values and gradients; with several
  /// consumers their gradients would be summed in 16 bits): a float32 CUDA input is then normalized by
  /// assay::fused_norm, which writes the 16-bit output and gets its gradients in one pass.
  bool autocast_output = false;
};

class ASSAY_LAYER_API NormImpl : public torch::nn::Cloneable<NormImpl> {
 public:
  explicit NormImpl(const NormOptions& options);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);

  NormOptions options;
  at::Tensor weight, bias;
  /// What computes the normalization; null = at::layer_norm / at::rms_norm (or assay::fused_norm, see
  /// NormOptions::autocast_output). Set by precision schemes; a kernel decides its output's dtype itself.
  std::shared_ptr<const NormKernel> kernel;
};
TORCH_MODULE(Norm);

/// Resets the kernel of every assay::Linear and assay::Norm in `module` to the default (the host does this before
/// applying a stage's precision scheme, so that a scheme never inherits its predecessor's kernels). Returns the
/// number of layers found.
ASSAY_LAYER_API int64_t clear_layer_kernels(torch::nn::Module& module);

}  // namespace assay
