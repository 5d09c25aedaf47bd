// Argument checks and dispatch to the CPU or CUDA backend.
#include "backend.hpp"

#include <assay/mx.hpp>

#include <ATen/ops/empty_like.h>
#ifdef ASSAY_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <stdexcept>
#include <string>

namespace assay::mx {
namespace {

detail::ElementFormat element_format(Format format) {
  const auto& f = info(format);
  return {f.mbits, f.min_exp, f.max_norm, f.ebits > 0, f.block_scaled};
}

// Quantizes x into `out`, or into a new tensor when `out` is undefined.
at::Tensor run(const at::Tensor& x, detail::Problem p, const char* what, at::Tensor out = {}) {
  if (!x.defined()) throw std::invalid_argument(std::string(what) + ": undefined tensor");
  if (x.scalar_type() != at::kFloat) {
    throw std::invalid_argument(std::string(what) + ": expects float32, got " + std::string(c10::toString(x.scalar_type())));
  }
  auto in = x.contiguous();
  if (!out.defined()) {
    out = at::empty_like(in);
  } else if (out.scalar_type() != at::kFloat || out.sizes() != in.sizes() || out.device() != in.device() ||
             !out.is_contiguous()) {
    throw std::invalid_argument(std::string(what) + ": out must be a contiguous float32 tensor of the input's shape and device");
  } else if (out.data_ptr() == in.data_ptr()) {
    throw std::invalid_argument(std::string(what) + ": out must not be the input");
  }
  p.in = in.const_data_ptr<float>();
  p.out = out.mutable_data_ptr<float>();
  if (in.numel() == 0) return out;
  if (in.is_cuda()) {
#ifdef ASSAY_WITH_CUDA
    c10::cuda::CUDAGuard guard(in.device());
    detail::quantize_cuda(p, detail::thresholds(), c10::cuda::getCurrentCUDAStream().stream());
#else
    throw std::runtime_error(std::string(what) + ": assay was built without CUDA kernels");
#endif
  } else if (in.is_cpu()) {
    detail::quantize_cpu(p);
  } else {
    throw std::invalid_argument(std::string(what) + ": tensors on " + in.device().str() + " are not supported");
  }
  return out;
}


detail::Problem elementwise_problem(const at::Tensor& x, Format format, Rounding rounding, uint64_t seed) {
  detail::Problem p{};
  p.outer = 1;
  p.length = x.defined() ? x.numel() : 0;
  p.inner = 1;
  p.blocked = false;
  p.format = element_format(format);
  p.emax = info(format).emax;
  p.rounding = static_cast<int>(rounding);
  p.seed = seed;
  return p;
}

detail::Problem blocked_problem(const at::Tensor& x, const QuantizeOptions& options) {
  if (!x.defined()) throw std::invalid_argument("mx::quantize: undefined tensor");
  if (options.block_size < 1) throw std::invalid_argument("mx::quantize: block_size must be >= 1");
  const int64_t dims = x.dim();
  const int64_t axis = options.axis < 0 ? options.axis + dims : options.axis;
  if (dims == 0 || axis < 0 || axis >= dims) {
    throw std::invalid_argument("mx::quantize: axis " + std::to_string(options.axis) + " out of range for a " +
                                std::to_string(dims) + "-d tensor");
  }
  detail::Problem p{};
  p.outer = 1;
  p.inner = 1;
  for (int64_t d = 0; d < axis; ++d) p.outer *= x.size(d);
  for (int64_t d = axis + 1; d < dims; ++d) p.inner *= x.size(d);
  p.length = x.size(axis);
  p.block_size = options.block_size;
  p.blocked = true;
  p.format = element_format(options.format);
  p.emax = info(options.format).emax;
  p.rounding = static_cast<int>(options.rounding);
  p.seed = options.seed;
  return p;
}

}  // namespace

at::Tensor round_elementwise(const at::Tensor& x, Format format, Rounding rounding, uint64_t seed) {
  return run(x, elementwise_problem(x, format, rounding, seed), "mx::round_elementwise");
}

at::Tensor quantize(const at::Tensor& x, const QuantizeOptions& options) {
  if (!info(options.format).block_scaled) return round_elementwise(x, options.format, options.rounding, options.seed);
  return run(x, blocked_problem(x, options), "mx::quantize");
}

at::Tensor& quantize_out(at::Tensor& out, const at::Tensor& x, const QuantizeOptions& options) {
  const bool blocked = info(options.format).block_scaled;
  const auto p = blocked ? blocked_problem(x, options) : elementwise_problem(x, options.format, options.rounding, options.seed);
  run(x, p, "mx::quantize_out", out);
  return out;
}

}  // namespace assay::mx
