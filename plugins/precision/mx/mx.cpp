// MX block-scaled precision (../shared/papers/mx-precision.md, "MX linear layer"): every assay::Linear of the model
// computes its forward GEMM and both backward GEMMs on MX-quantized operands, with optional bf16 rounding of the
// vector operations around them; assay::Norm layers get bf16-rounded inputs/outputs and optionally quantized
// affine parameters. The model is not copied: apply() sets each layer's kernel.
#include <assay/assay.hpp>
#include <assay/layers.hpp>
#include <assay/mx.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <optional>

namespace {

namespace mx = assay::mx;

// The resolved scheme; an unset format = that operand stays float32.
struct Scheme {
  std::optional<mx::Format> weights, activations, weights_bp, activations_bp, grads, norm_affine;
  bool norm_affine_bf16 = false;
  int64_t block_size = 32;
  mx::Rounding rounding = mx::Rounding::nearest;
  std::optional<mx::Format> vectors = mx::Format::bf16;  // rounding of vector ops; unset = float32
  bool quantize_backprop = true;
  uint64_t seed = 0;
  mutable uint64_t calls = 0;  // stochastic rounding: a fresh stream per quantization (reset every step)
  int64_t step = 0;

  at::Tensor bf(const at::Tensor& t) const {
    return vectors ? mx::round_elementwise(t, *vectors, mx::Rounding::nearest) : t;
  }
  at::Tensor quantize(const at::Tensor& t, const std::optional<mx::Format>& format, int64_t axis) const {
    if (!format) return t;
    const uint64_t stream = seed ^ (static_cast<uint64_t>(step) * 0x9E3779B97F4A7C15ull) ^ (++calls * 0xD1B54A32D192ED03ull);
    return mx::quantize(t.contiguous(), {.format = *format, .axis = axis, .block_size = block_size, .rounding = rounding, .seed = stream});
  }
};

// y = bf(Qa(bf x) Qw(bf W)^T), y = bf(y + bf b); backward per the spec with g = bf(dy):
//   dW = bf(Qg(g along tokens)^T Qa_bp(x along tokens)), dx = bf(Qg(g along out) Qw_bp(W along out)), db = bf(sum g).
struct MxLinearFunction : public torch::autograd::Function<MxLinearFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const Scheme* scheme) {
    const auto& s = *scheme;
    auto x2 = s.bf(x.reshape({-1, x.size(-1)}));
    auto w = s.bf(weight);
    auto y = s.bf(at::matmul(s.quantize(x2, s.activations, 1), s.quantize(w, s.weights, 1).t()));
    const bool has_bias = bias.numel() > 0;
    if (has_bias) y = s.bf(y + s.bf(bias));
    ctx->save_for_backward({x2, w});
    ctx->saved_data["scheme"] = reinterpret_cast<int64_t>(scheme);  // owned by the layer's kernel, outlives the graph
    ctx->saved_data["has_bias"] = has_bias;
    auto shape = x.sizes().vec();
    shape.back() = weight.size(0);
    return y.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto& s = *reinterpret_cast<const Scheme*>(ctx->saved_data["scheme"].toInt());
    auto saved = ctx->get_saved_variables();
    const auto& x2 = saved[0];
    const auto& w = saved[1];
    auto g = s.bf(grads[0].reshape({-1, w.size(0)}));
    at::Tensor dx, dw;
    if (s.quantize_backprop) {
      dw = s.bf(at::matmul(s.quantize(g, s.grads, 0).t(), s.quantize(x2, s.activations_bp, 0)));
      dx = s.bf(at::matmul(s.quantize(g, s.grads, 1), s.quantize(w, s.weights_bp, 0)));
    } else {
      dw = s.bf(at::matmul(g.t(), x2));
      dx = s.bf(at::matmul(g, w));
    }
    at::Tensor db = ctx->saved_data["has_bias"].toBool() ? s.bf(g.sum(0)) : at::Tensor();
    auto shape = grads[0].sizes().vec();
    shape.back() = w.size(1);
    return {dx.view(shape), dw, db, at::Tensor()};
  }
};

// Quantizes a tensor in the forward pass and its gradient in the backward pass (straight-through otherwise).
struct QuantizeFunction : public torch::autograd::Function<QuantizeFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& t, const Scheme* scheme, bool affine) {
    ctx->saved_data["scheme"] = reinterpret_cast<int64_t>(scheme);
    ctx->saved_data["affine"] = affine;
    return affine ? quantize_affine(t, *scheme, false) : scheme->bf(t);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto& s = *reinterpret_cast<const Scheme*>(ctx->saved_data["scheme"].toInt());
    const bool affine = ctx->saved_data["affine"].toBool();
    return {affine ? quantize_affine(grads[0], s, true) : s.bf(grads[0]), at::Tensor(), at::Tensor()};
  }
  // LayerNorm weight/bias: MX along their only axis (weights format forward, grads format backward), or bf16.
  static at::Tensor quantize_affine(const at::Tensor& t, const Scheme& s, bool gradient) {
    if (s.norm_affine) return s.quantize(t, gradient ? s.grads : s.norm_affine, 0);
    return s.norm_affine_bf16 ? mx::round_elementwise(t, mx::Format::bf16, mx::Rounding::nearest) : t;
  }
};

class MxLinear : public assay::LinearKernel {
 public:
  explicit MxLinear(std::shared_ptr<Scheme> scheme) : scheme_(std::move(scheme)) {}
  at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const override {
    // Custom autograd functions cannot take undefined tensors: "no bias" travels as an empty one.
    return MxLinearFunction::apply(x, weight, bias.defined() ? bias : at::empty({0}, weight.options()), scheme_.get());
  }

 private:
  std::shared_ptr<Scheme> scheme_;
};

class MxNorm : public assay::NormKernel {
 public:
  explicit MxNorm(std::shared_ptr<Scheme> scheme) : scheme_(std::move(scheme)) {}
  at::Tensor norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps, bool rms) const override {
    const Scheme* s = scheme_.get();
    auto affine = [&](const at::Tensor& t) { return t.defined() ? QuantizeFunction::apply(t, s, true) : t; };
    auto input = QuantizeFunction::apply(x, s, false);
    auto y = rms ? at::rms_norm(input, {x.size(-1)}, affine(weight), eps)
                 : at::layer_norm(input, {x.size(-1)}, affine(weight), affine(bias), eps);
    return QuantizeFunction::apply(y, s, false);
  }

 private:
  std::shared_ptr<Scheme> scheme_;
};

class Mx : public assay::Precision {
 public:
  struct Options {
    std::string weights = "fp8_e4m3";
    std::string activations = "fp8_e4m3";
    std::string weights_bp = "same";
    std::string activations_bp = "same";
    std::string grads = "same";
    int64_t block_size = 32;
    std::string rounding = "nearest";
    std::string vector_ops = "bf16";
    bool quantize_backprop = true;
    std::string norm_affine = "bf16";
    std::vector<std::string> exempt_groups;
    void fields(assay::Fields& f) {
      auto formats = mx::format_names();
      formats.insert(formats.begin(), "fp32");
      auto bp = formats;
      bp.insert(bp.begin(), "same");
      f("weights", weights, "format of W in the forward GEMM (fp32 = unquantized)").choices(formats);
      f("activations", activations, "format of the layer input x in the forward GEMM").choices(formats);
      f("weights_bp", weights_bp, "format of W in the dx GEMM; same = weights").choices(bp);
      f("activations_bp", activations_bp, "format of x in the dW GEMM; same = activations").choices(bp);
      f("grads", grads, "format of dy in both backward GEMMs; same = activations_bp").choices(bp);
      f("block_size", block_size, "elements sharing one E8M0 scale").min(1);
      f("rounding", rounding, "rounding of element mantissas").choices(mx::rounding_names());
      f("vector_ops", vector_ops, "rounding of vector ops (GEMM inputs/outputs, bias add, norms): bf16, fp16 or fp32")
          .choices({"bf16", "fp16", "fp32"});
      f("quantize_backprop", quantize_backprop, "quantize the two backward GEMMs (false = MX forward only)");
      f("norm_affine", norm_affine, "LayerNorm/RMSNorm weight and bias: mx (weights format, grads in the grads format), bf16, or fp32")
          .choices({"mx", "bf16", "fp32"});
      f("exempt_groups", exempt_groups, "model parameter groups whose layers stay float32 (e.g. head, norms)");
    }
  };

  Mx(const Options& options, const assay::Context& context) : options_(options), scheme_(std::make_shared<Scheme>()) {
    auto format = [](const std::string& name) -> std::optional<mx::Format> {
      if (name == "fp32") return std::nullopt;
      return mx::format_from_name(name);
    };
    auto& s = *scheme_;
    s.weights = format(options.weights);
    s.activations = format(options.activations);
    s.weights_bp = options.weights_bp == "same" ? s.weights : format(options.weights_bp);
    s.activations_bp = options.activations_bp == "same" ? s.activations : format(options.activations_bp);
    s.grads = options.grads == "same" ? s.activations_bp : format(options.grads);
    if (options.norm_affine == "mx") {
      s.norm_affine = s.weights;
    }
    s.norm_affine_bf16 = options.norm_affine == "bf16";
    s.block_size = options.block_size;
    s.rounding = mx::rounding_from_name(options.rounding);
    s.vectors = options.vector_ops == "fp32" ? std::nullopt : std::optional(mx::format_from_name(options.vector_ops));
    s.quantize_backprop = options.quantize_backprop;
    s.seed = context.seed;
  }

  void apply(assay::Model& model) override {
    model.to(torch::kFloat);
    std::map<const void*, std::string> group_of;
    std::vector<std::string> groups;
    for (const auto& group : model.param_groups()) {
      groups.push_back(group.name);
      for (const auto& p : group.params) group_of[p.unsafeGetTensorImpl()] = group.name;
    }
    for (const auto& name : options_.exempt_groups) {
      if (std::find(groups.begin(), groups.end(), name) == groups.end()) {
        std::string known;
        for (const auto& g : groups) known += (known.empty() ? "" : ", ") + g;
        throw std::invalid_argument("mx: exempt_groups names '" + name + "', which the model does not have (groups: " + known + ")");
      }
    }
    auto exempt = [&](const at::Tensor& weight) {
      if (!weight.defined()) return false;
      auto it = group_of.find(weight.unsafeGetTensorImpl());
      return it != group_of.end() &&
             std::find(options_.exempt_groups.begin(), options_.exempt_groups.end(), it->second) != options_.exempt_groups.end();
    };
    auto linear_kernel = std::make_shared<MxLinear>(scheme_);
    auto norm_kernel = std::make_shared<MxNorm>(scheme_);
    int64_t linears = 0, norms = 0, skipped = 0;
    for (const auto& m : model.modules(/*include_self=*/false)) {
      if (auto* linear = dynamic_cast<assay::LinearImpl*>(m.get())) {
        if (exempt(linear->weight)) ++skipped;
        else linear->kernel = linear_kernel, ++linears;
      } else if (auto* norm = dynamic_cast<assay::NormImpl*>(m.get())) {
        if (exempt(norm->weight)) ++skipped;
        else norm->kernel = norm_kernel, ++norms;
      }
    }
    if (linears + norms + skipped == 0) {
      throw std::invalid_argument("mx: the model has no assay::Linear or assay::Norm layers, so nothing can be quantized "
                                  "(models must build their GEMMs from assay/layers.hpp)");
    }
    assay::log::info("mx: ", linears, " linear layers (weights ", options_.weights, ", activations ", options_.activations,
                     options_.quantize_backprop ? ", backward quantized" : ", forward only", "), ", norms, " norms (affine ",
                     options_.norm_affine, "), ", skipped, " exempt; vector ops ", options_.vector_ops);
  }

  void on_step(int64_t step) override {
    scheme_->step = step;
    scheme_->calls = 0;
  }
  // Stochastic rounding seeds each quantization from the step on the host: a captured graph would
  // replay one step's random streams forever.
  bool capturable() const override { return options_.rounding != "stochastic"; }

 private:
  Options options_;
  std::shared_ptr<Scheme> scheme_;
};

// bf16 / fp16 emulation: every GEMM operand (forward and backward), vector op and norm parameter rounded
// elementwise to the format: the mx scheme with those formats everywhere.
template <mx::Format kFormat>
class Elementwise : public assay::Precision {
 public:
  struct Options {
    bool quantize_backprop = true;
    std::vector<std::string> exempt_groups;
    void fields(assay::Fields& f) {
      f("quantize_backprop", quantize_backprop, "round the backward GEMMs' operands too (false = forward only)");
      f("exempt_groups", exempt_groups, "model parameter groups whose layers stay float32");
    }
  };
  Elementwise(const Options& options, const assay::Context& context) : inner_(as_mx(options), context) {}
  void apply(assay::Model& model) override { inner_.apply(model); }
  void on_step(int64_t step) override { inner_.on_step(step); }
  bool capturable() const override { return inner_.capturable(); }

 private:
  static Mx::Options as_mx(const Options& options) {
    Mx::Options o;
    const std::string name(mx::info(kFormat).name);
    o.weights = o.activations = o.vector_ops = name;
    o.norm_affine = kFormat == mx::Format::bf16 ? "bf16" : "fp32";
    o.quantize_backprop = options.quantize_backprop;
    o.exempt_groups = options.exempt_groups;
    return o;
  }
  Mx inner_;
};

}  // namespace

ASSAY_PLUGIN("mx", "1.0.0") {
  plugin.add<Mx>("mx", "MX block-scaled formats for every assay::Linear GEMM (forward and backward) and bf16 vector ops");
  plugin.add<Elementwise<mx::Format::bf16>>("bf16", "bf16 emulation: every GEMM operand, vector op and norm parameter rounded to bf16");
  plugin.add<Elementwise<mx::Format::fp16>>("fp16", "fp16 emulation: every GEMM operand and vector op rounded to fp16 (norm parameters fp32)");
}
