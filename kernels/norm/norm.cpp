// Argument checks, dispatch to the CPU or CUDA backend, and the autograd function of apply().
#include "backend.hpp"

#include <assay/fused_norm.hpp>

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/autograd/custom_function.h>
#ifdef ASSAY_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <stdexcept>
#include <string>

namespace assay::fused_norm {
namespace {

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument("fused_norm: " + message); }

std::string dtype_name(at::ScalarType t) { return c10::toString(t); }

// Checks x, weight, bias and options; returns D.
int64_t check(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const Options& o) {
  if (!x.defined()) fail("undefined input");
  if (x.scalar_type() != at::kFloat) fail("expects a float32 input, got " + dtype_name(x.scalar_type()));
  if (x.dim() == 0 || x.size(-1) == 0) fail("the input needs a non-empty last dimension, got shape " + c10::str(x.sizes()));
  if (o.out_dtype != at::kBFloat16 && o.out_dtype != at::kHalf) fail("out_dtype must be bf16 or fp16, got " + dtype_name(o.out_dtype));
  if (o.rms && bias.defined()) fail("RMSNorm has no bias");
  const int64_t D = x.size(-1);
  for (const auto& [t, name] : {std::pair{&weight, "weight"}, std::pair{&bias, "bias"}}) {
    if (!t->defined()) continue;
    if (t->scalar_type() != at::kFloat || t->dim() != 1 || t->size(0) != D || t->device() != x.device()) {
      fail(std::string(name) + " must be float32 [" + std::to_string(D) + "] on " + x.device().str() + ", got " +
           dtype_name(t->scalar_type()) + " " + c10::str(t->sizes()) + " on " + t->device().str());
    }
  }
  return D;
}

const float* data_or_null(const at::Tensor& t) { return t.defined() ? t.const_data_ptr<float>() : nullptr; }

#ifdef ASSAY_WITH_CUDA
void* current_stream(const at::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }
#endif

[[noreturn]] void no_cuda() { fail("this build has no CUDA kernels (configure with ASSAY_CUDA=ON)"); }

// Autograd's custom functions take no undefined tensors: a missing weight or bias travels as an empty one.
at::Tensor empty_if_undefined(const at::Tensor& t, const at::Tensor& x) { return t.defined() ? t : at::empty({0}, x.options()); }
at::Tensor undefined_if_empty(const at::Tensor& t) { return t.numel() > 0 ? t : at::Tensor(); }

struct NormFunction : torch::autograd::Function<NormFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight_or_empty,
                            const at::Tensor& bias_or_empty, bool rms, double eps, int64_t out_dtype) {
    const Options o{.rms = rms, .eps = eps, .out_dtype = static_cast<at::ScalarType>(out_dtype)};
    const auto weight = undefined_if_empty(weight_or_empty), bias = undefined_if_empty(bias_or_empty);
    auto in = x.contiguous();
    auto f = fused_norm::forward(in, weight, bias, o);
    ctx->save_for_backward({in, weight, f.mean, f.rstd});
    ctx->saved_data["rms"] = rms;
    ctx->saved_data["out_dtype"] = out_dtype;
    ctx->saved_data["has_bias"] = bias.defined();
    return f.y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Options o{.rms = ctx->saved_data["rms"].toBool(),
                    .out_dtype = static_cast<at::ScalarType>(ctx->saved_data["out_dtype"].toInt())};  // no eps in backward
    auto g = fused_norm::backward(grads[0], saved[0], saved[2], saved[3], saved[1],
                                  ctx->saved_data["has_bias"].toBool(), o);
    return {g.x, g.weight, g.bias, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

Forward forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const Options& o) {
  const int64_t D = check(x, weight, bias, o);
  auto in = x.contiguous();
  const int64_t rows = in.numel() / D;
  Forward f{at::empty(in.sizes(), in.options().dtype(o.out_dtype)), at::empty({rows}, in.options()),
            at::empty({rows}, in.options())};
  if (rows == 0) return f;
  const detail::ForwardProblem p{in.const_data_ptr<float>(), data_or_null(weight), data_or_null(bias),
                                 f.y.mutable_data_ptr(), f.mean.mutable_data_ptr<float>(),
                                 f.rstd.mutable_data_ptr<float>(), rows, D, static_cast<float>(o.eps), o.rms,
                                 o.out_dtype == at::kHalf};
  if (in.is_cuda()) {
#ifdef ASSAY_WITH_CUDA
    c10::cuda::CUDAGuard guard(in.device());
    detail::forward_cuda(p, current_stream(in));
#else
    no_cuda();
#endif
  } else {
    detail::forward_cpu(p);
  }
  return f;
}

Gradients backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& mean, const at::Tensor& rstd,
                   const at::Tensor& weight, bool has_bias, const Options& o) {
  const int64_t D = check(x, weight, {}, {.rms = false, .eps = o.eps, .out_dtype = o.out_dtype});
  if (!dy.defined() || dy.scalar_type() != o.out_dtype || dy.sizes() != x.sizes() || dy.device() != x.device()) {
    fail("the output gradient must be " + dtype_name(o.out_dtype) + " " + c10::str(x.sizes()) + " on " + x.device().str());
  }
  auto in = x.contiguous(), g = dy.contiguous();
  const int64_t rows = in.numel() / D;
  for (const auto* t : {&mean, &rstd}) {
    if (!t->defined() || t->scalar_type() != at::kFloat || t->numel() != rows || t->device() != x.device()) {
      fail("mean and rstd must be float32 [" + std::to_string(rows) + "] on " + x.device().str() + " (from forward())");
    }
  }
  auto m = mean.contiguous(), r = rstd.contiguous();
  Gradients out{at::empty_like(in), weight.defined() ? at::empty({D}, in.options()) : at::Tensor(),
                has_bias ? at::empty({D}, in.options()) : at::Tensor()};
  if (rows == 0) {
    for (auto* t : {&out.weight, &out.bias}) if (t->defined()) t->zero_();
    return out;
  }
  const detail::BackwardProblem p{g.const_data_ptr(), in.const_data_ptr<float>(), m.const_data_ptr<float>(),
                                  r.const_data_ptr<float>(), data_or_null(weight), out.x.mutable_data_ptr<float>(),
                                  out.weight.defined() ? out.weight.mutable_data_ptr<float>() : nullptr,
                                  out.bias.defined() ? out.bias.mutable_data_ptr<float>() : nullptr,
                                  rows, D, o.rms, o.out_dtype == at::kHalf};
  if (in.is_cuda()) {
#ifdef ASSAY_WITH_CUDA
    c10::cuda::CUDAGuard guard(in.device());
    const bool sums = p.dweight || p.dbias;
    auto partials = at::empty({sums ? 2 * detail::backward_cuda_partials(rows, D) * D : 0}, in.options());
    detail::backward_cuda(p, sums ? partials.mutable_data_ptr<float>() : nullptr, current_stream(in));
#else
    no_cuda();
#endif
  } else {
    detail::backward_cpu(p);
  }
  return out;
}

at::Tensor apply(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const Options& o) {
  check(x, weight, bias, o);  // here too: the autograd function would wrap the message
  return NormFunction::apply(x, empty_if_undefined(weight, x), empty_if_undefined(bias, x), o.rms, o.eps,
                             static_cast<int64_t>(o.out_dtype));
}

}  // namespace assay::fused_norm
