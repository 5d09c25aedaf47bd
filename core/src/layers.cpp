#include <assay/layers.hpp>

#include <assay/fused_norm.hpp>

#include <ATen/autocast_mode.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rms_norm.h>
#include <ATen/ops/zeros.h>
#include <torch/nn/init.h>

#include <cmath>

namespace assay {

LinearKernel::~LinearKernel() = default;
NormKernel::~NormKernel() = default;

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features), has_bias_(bias) {
  reset();
}

void LinearImpl::reset() {
  weight = register_parameter("weight", at::empty({out_features_, in_features_}));
  bias = has_bias_ ? register_parameter("bias", at::empty({out_features_})) : register_parameter("bias", {}, false);
  // torch::nn::Linear's initialization, in the same order (same random stream).
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = in_features_ > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features_)) : 0.0;
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  return kernel ? kernel->linear(x, weight, bias) : at::linear(x, weight, bias);
}

NormImpl::NormImpl(const NormOptions& options_) : options(options_) { reset(); }

void NormImpl::reset() {
  if (options.affine) {
    weight = register_parameter("weight", at::ones({options.dim}));
    if (!options.rms && options.bias) bias = register_parameter("bias", at::zeros({options.dim}));
  }
}

at::Tensor NormImpl::forward(const at::Tensor& x) {
  if (kernel) return kernel->norm(x, weight, bias, options.eps, options.rms);
  const auto plain = [&] {
    return options.rms ? at::rms_norm(x, {options.dim}, weight, options.eps)
                       : at::layer_norm(x, {options.dim}, weight, bias, options.eps);
  };
  const auto device = x.device().type();
  if (!options.autocast_output || !at::autocast::is_autocast_enabled(device)) return plain();
  const auto dtype = at::autocast::get_autocast_dtype(device);
  if (dtype != at::kBFloat16 && dtype != at::kHalf) return plain();
  // On CUDA the fused kernels (float32 tensors only); on the CPU, ATen's vectorized norm and a cast are faster than
  // the fused kernels' scalar loops.
  const auto is_float = [](const at::Tensor& t) { return !t.defined() || t.scalar_type() == at::kFloat; };
  if (!x.is_cuda() || x.scalar_type() != at::kFloat || !is_float(weight) || !is_float(bias)) return plain().to(dtype);
  return fused_norm::apply(x, weight, bias, {.rms = options.rms, .eps = options.eps, .out_dtype = dtype});
}

int64_t clear_layer_kernels(torch::nn::Module& module) {
  int64_t found = 0;
  for (const auto& m : module.modules(/*include_self=*/false)) {
    if (auto* linear = dynamic_cast<LinearImpl*>(m.get())) {
      linear->kernel.reset();
      ++found;
    } else if (auto* norm = dynamic_cast<NormImpl*>(m.get())) {
      norm->kernel.reset();
      ++found;
    }
  }
  return found;
}

}  // namespace assay
