#pragma once
/// @file LayerNorm / RMSNorm whose output is rounded to 16 bits, fused: the normalization of a float32 tensor over
/// its last dimension, computed in float32 and written straight as bf16 (or fp16), and a backward that takes the
/// 16-bit output gradient and gives the float32 input, weight and bias gradients in one pass over the rows.
///
///   auto y = assay::fused_norm::apply(x, weight, bias, {.eps = 1e-5});  // bf16, differentiable
///
/// Values: what `at::layer_norm(x, {D}, weight, bias, eps).to(bf16)` gives (up to the order of float32 sums), and
/// its gradients are those of that expression. This is a normalization under autocast whose consumers are matrix
/// products (they would cast its float32 output to bf16 anyway): on CUDA the two kernels replace ATen's norm, the
/// cast, the gradient's cast back and ATen's separate weight/bias reduction. See docs/gpu.md.
#include <ATen/core/Tensor.h>

namespace assay::fused_norm {

struct Options {
  bool rms = false;                          ///< RMSNorm (no mean subtracted; bias must be undefined) or LayerNorm
  double eps = 1e-5;                         ///< added to the variance (RMSNorm: to the mean square)
  at::ScalarType out_dtype = at::kBFloat16;  ///< the output's dtype: bf16 or fp16 (round to nearest even)
};

/// y = (x - mean) * rstd * weight + bias rounded to `out_dtype`, over the last dimension D; rstd = 1/sqrt(var + eps)
/// with the biased variance (RMSNorm: mean = 0, var = mean square). x float32 [..., D] on CPU or CUDA; weight and
/// bias float32 [D] on x's device, or undefined (= ones / zeros). Differentiable in x, weight and bias (once: no
/// double backward). Throws std::invalid_argument on wrong dtypes, shapes or devices.
at::Tensor apply(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const Options& options = {});

/// The forward pass alone: y [..., D] in out_dtype, and per row (x viewed as [rows, D]) the float32 mean and rstd
/// that backward() takes.
struct Forward {
  at::Tensor y, mean, rstd;
};
Forward forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const Options& options = {});

/// The backward pass alone: dy is y's gradient (out_dtype, y's shape); mean and rstd come from forward().
/// Gradients in float32: x's shape, and [D] for weight and bias (undefined when that parameter is undefined).
struct Gradients {
  at::Tensor x, weight, bias;
};
Gradients backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& mean, const at::Tensor& rstd,
                   const at::Tensor& weight, bool has_bias, const Options& options = {});

}  // namespace assay::fused_norm
