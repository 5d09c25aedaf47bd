// Adafactor in two variants (option `variant`, per group):
//
// "paper" (default): the variant of Zhao et al. 2025 ("Deconstructing what makes a good optimizer for
// language models"): Adam with a factored second moment, no update clipping, no relative step size.
// Per parameter, t = the number of steps in which it had a gradient, bc_i = 1 - beta_i^t:
//   p <- p * (1 - lr * weight_decay)                          (decoupled, before the update; 0 = off)
//   m <- beta1 m + (1 - beta1) g
//   >= 2 dims: r <- beta2 r + (1 - beta2) mean_cols(g^2)      (one per row)
//              c <- beta2 c + (1 - beta2) mean_rows(g^2)      (one per column)
//              V = r c^T / mean(r)
//   0-D, 1-D:  V = v <- beta2 v + (1 - beta2) g^2              (unfactored)
//   p <- p - lr / bc1 * m / (sqrt(V / bc2) + eps)
// Tensors with more than 2 dims [..., R, C] are factored over their last two dims: one (r, c) pair per
// leading index, each normalized by its own mean(r) (as torch.optim.Adafactor and T2T do). When mean(r)
// is exactly 0 (no nonzero gradient yet) V is taken as 0 instead of 0/0, so zero gradients move nothing.
// weight_decay is not in the paper's Adafactor; it is the decoupled form of the other plugins here.
//
// "torch": exactly torch.optim.Adafactor (torch 2.11, single-tensor path): relative step
// rho_t = min(lr, 1/sqrt(t)) scaled by max(eps2, RMS(p)), beta2_t = 1 - t^beta2_decay, eps1 clamps,
// update clipping by RMS(U)/d, no momentum, weight decay p *= 1 - lr * weight_decay.
//
// State has the parameter's dtype and device, like torch.optim's. Each step of the "torch" variant reads
// two scalars back from the device (RMS of p and of the update), as torch's implementation does.
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct AdafactorOptions {
  std::string variant = "paper";
  double lr = 1e-3;
  double weight_decay = 0.0;
  // variant = "paper"
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-15;
  // variant = "torch" (torch.optim.Adafactor's names and defaults)
  double beta2_decay = -0.8;
  double eps1 = -1;
  double eps2 = 1e-3;
  double d = 1.0;
  bool maximize = false;

  void fields(assay::Fields& f) {
    f("variant", variant, "\"paper\": Zhao et al. 2025 (momentum, bias correction, no clipping); "
                          "\"torch\": torch.optim.Adafactor").choices({"paper", "torch"});
    f("lr", lr, "learning rate; torch variant: the cap of the relative step size (torch's default 1e-2)").min(0);
    f("weight_decay", weight_decay, "decoupled weight decay, p *= 1 - lr * weight_decay before the update").min(0);
    f("beta1", beta1, "paper variant: decay of the first moment m").range(0, 1);
    f("beta2", beta2, "paper variant: decay of the second-moment factors r, c (and of v for 0-D/1-D)").range(0, 1);
    f("eps", eps, "paper variant: added to sqrt(V / bc2)").min(0);
    f("beta2_decay", beta2_decay, "torch variant: beta2_t = 1 - t^beta2_decay").max(0);
    f("eps1", eps1, "torch variant: floor of the variance estimate; negative (default -1) = the parameter "
                    "dtype's machine epsilon (torch's None)").min(-1);
    f("eps2", eps2, "torch variant: floor of RMS(p) in the step size").min(0);
    f("d", d, "torch variant: update clipping threshold on RMS(update)").min(1);
    f("maximize", maximize, "torch variant: ascend the objective (use -grad)");
  }
};

/// Throws when an option of the other variant is set (it would be silently ignored).
void check_variant(const AdafactorOptions& o) {
  const AdafactorOptions defaults;
  auto refuse = [&](const std::string& key, const std::string& other) {
    throw std::invalid_argument("adafactor: " + key + " applies only to variant = \"" + other +
                                "\", not to variant = \"" + o.variant + "\"");
  };
  if (o.variant == "paper") {
    if (o.beta2_decay != defaults.beta2_decay) refuse("beta2_decay", "torch");
    if (o.eps1 != defaults.eps1) refuse("eps1", "torch");
    if (o.eps2 != defaults.eps2) refuse("eps2", "torch");
    if (o.d != defaults.d) refuse("d", "torch");
    if (o.maximize != defaults.maximize) refuse("maximize", "torch");
    if (o.beta1 >= 1 || o.beta2 >= 1) throw std::invalid_argument("adafactor: beta1 and beta2 must be < 1");
  } else if (o.variant == "torch") {
    if (o.beta1 != defaults.beta1) refuse("beta1", "paper");
    if (o.beta2 != defaults.beta2) refuse("beta2", "paper");
    if (o.eps != defaults.eps) refuse("eps", "paper");
  } else {
    throw std::invalid_argument("adafactor: unknown variant \"" + o.variant + "\" (paper or torch)");
  }
}

/// torch.finfo(dtype).eps.
double machine_epsilon(at::ScalarType type) {
  switch (type) {
    case at::kDouble: return std::numeric_limits<double>::epsilon();
    case at::kFloat: return std::numeric_limits<float>::epsilon();
    case at::kHalf: return 0.0009765625;    // 2^-10
    case at::kBFloat16: return 0.0078125;   // 2^-7
    default: throw std::runtime_error("adafactor: no machine epsilon for dtype " + std::string(c10::toString(type)));
  }
}

/// Per-parameter state. Factored (>= 2 dims): row [..., R, 1] and col [..., 1, C] (torch's layout, in
/// both variants); otherwise v, shaped like the parameter. m only in the paper variant.
struct State {
  int64_t step = 0;
  at::Tensor m, row, col, v;
};

std::vector<int64_t> with_size(at::IntArrayRef sizes, int64_t dim, int64_t size) {
  std::vector<int64_t> out(sizes.begin(), sizes.end());
  out[static_cast<size_t>(static_cast<int64_t>(out.size()) + dim)] = size;
  return out;
}

void init_state(const at::Tensor& p, const AdafactorOptions& o, State& s) {
  if (o.variant == "paper") s.m = torch::zeros_like(p, at::MemoryFormat::Preserve);
  if (p.dim() >= 2) {
    s.row = torch::zeros(with_size(p.sizes(), -1, 1), p.options());
    s.col = torch::zeros(with_size(p.sizes(), -2, 1), p.options());
  } else {
    s.v = torch::zeros_like(p, at::MemoryFormat::Preserve);
  }
}

void paper_step(at::Tensor& p, const at::Tensor& grad, State& s, const AdafactorOptions& o, double lr) {
  s.step += 1;
  const double t = static_cast<double>(s.step);
  const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
  if (o.weight_decay != 0) p.mul_(1 - lr * o.weight_decay);
  s.m.mul_(o.beta1).add_(grad, 1 - o.beta1);
  at::Tensor V;
  if (p.dim() >= 2) {
    const at::Tensor g2 = grad.square();
    s.row.mul_(o.beta2).add_(g2.mean({-1}, true), 1 - o.beta2);
    s.col.mul_(o.beta2).add_(g2.mean({-2}, true), 1 - o.beta2);
    const at::Tensor mean_row = s.row.mean({-2}, true);  // [..., 1, 1]
    V = s.row.mul(s.col).div_(mean_row.masked_fill(mean_row == 0, 1));  // r c^T / mean(r); 0 when r = 0
  } else {
    s.v.mul_(o.beta2).addcmul_(grad, grad, 1 - o.beta2);
    V = s.v;
  }
  p.addcdiv_(s.m, V.div(bc2).sqrt_().add_(o.eps), -lr / bc1);
}

// Mirrors torch/optim/_adafactor.py:_single_tensor_adafactor op by op (same ATen kernels, same scalar
// arithmetic in double), so that results match torch.optim.Adafactor to the last bit where the lr does.
void torch_step(at::Tensor& p, const at::Tensor& g, State& s, const AdafactorOptions& o, double lr) {
  const at::Tensor grad = o.maximize ? -g : g;
  const double eps1 = o.eps1 < 0 ? machine_epsilon(p.scalar_type()) : o.eps1;
  s.step += 1;  // torch counts in a float32 tensor: the same number up to 2^24 steps
  const double t = static_cast<double>(s.step);
  const double one_minus_beta2_t = std::pow(t, o.beta2_decay);
  const double rho_t = std::min(lr, 1 / std::pow(t, 0.5));
  const double rms_p = at::linalg_vector_norm(p, 2).item<double>() / std::pow(static_cast<double>(p.numel()), 0.5);
  const double alpha = std::max(o.eps2, rms_p) * rho_t;
  if (o.weight_decay != 0) p.mul_(1 - lr * o.weight_decay);
  at::Tensor var_estimate;
  if (grad.dim() > 1) {
    const at::Tensor row_mean = at::linalg_vector_norm(grad, 2, {-1}, true).square_().div_(grad.size(-1));
    s.row.lerp_(row_mean, one_minus_beta2_t);
    const at::Tensor col_mean = at::linalg_vector_norm(grad, 2, {-2}, true).square_().div_(grad.size(-2));
    s.col.lerp_(col_mean, one_minus_beta2_t);
    var_estimate = s.row.matmul(s.col);
    var_estimate.div_(s.row.mean({-2}, true).clamp_min_(eps1));
  } else {
    s.v.lerp_(grad * grad, one_minus_beta2_t);
    var_estimate = s.v.clone();
  }
  at::Tensor update = var_estimate.clamp_min_(eps1 * eps1).rsqrt_();
  update.mul_(grad);
  const double rms_update =
      at::linalg_vector_norm(update, 2).item<double>() / (std::pow(static_cast<double>(update.numel()), 0.5) * o.d);
  p.add_(update, -alpha / std::max(1.0, rms_update));
}

class Adafactor : public assay::Optimizer {
 public:
  using Options = AdafactorOptions;

  Adafactor(const Options& options, const assay::Context& context) {
    for (auto& group : assay::groups_with_options(context, options)) {
      Group g;
      g.options = group.options;
      check_variant(g.options);
      g.lr = g.options.lr;
      g.params = group.params;
      g.state.resize(g.params.size());
      groups_.push_back(std::move(g));
    }
  }

  void step() override {
    torch::NoGradGuard no_grad;
    for (auto& group : groups_) {
      for (size_t i = 0; i < group.params.size(); ++i) {
        at::Tensor& p = group.params[i];
        const at::Tensor& grad = p.grad();
        if (!grad.defined()) continue;
        if (grad.is_sparse()) throw std::runtime_error("adafactor: sparse gradients are not supported");
        State& s = group.state[i];
        if (s.step == 0) init_state(p, group.options, s);
        if (group.options.variant == "paper") {
          paper_step(p, grad, s, group.options, group.lr);
        } else {
          torch_step(p, grad, s, group.options, group.lr);
        }
      }
    }
  }

  void set_lr_factor(double factor) override {
    for (auto& group : groups_) group.lr = group.options.lr * factor;
  }

  double lr() const override { return groups_.empty() ? 0.0 : groups_.front().lr; }

  void save(torch::serialize::OutputArchive& archive) const override {
    for (size_t g = 0; g < groups_.size(); ++g) {
      archive.write(key(g) + ".size", torch::tensor(static_cast<int64_t>(groups_[g].params.size())), true);
      for (size_t i = 0; i < groups_[g].params.size(); ++i) {
        const State& s = groups_[g].state[i];
        if (s.step == 0) continue;
        const std::string k = key(g, i);
        archive.write(k + ".step", torch::tensor(s.step), true);
        if (s.m.defined()) archive.write(k + ".m", s.m, true);
        if (s.row.defined()) archive.write(k + ".row", s.row, true);
        if (s.col.defined()) archive.write(k + ".col", s.col, true);
        if (s.v.defined()) archive.write(k + ".v", s.v, true);
      }
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    for (size_t g = 0; g < groups_.size(); ++g) {
      at::Tensor size;
      if (!archive.try_read(key(g) + ".size", size, true) ||
          size.item<int64_t>() != static_cast<int64_t>(groups_[g].params.size())) {
        throw std::runtime_error("adafactor: the checkpoint's parameter groups do not match the model's");
      }
      for (size_t i = 0; i < groups_[g].params.size(); ++i) {
        const at::Tensor& p = groups_[g].params[i];
        const std::string k = key(g, i);
        State s;
        at::Tensor step;
        if (archive.try_read(k + ".step", step, true)) {
          s.step = step.item<int64_t>();
          State expected;  // which tensors, of which shapes, this parameter's state has
          init_state(p, groups_[g].options, expected);
          auto read = [&](const char* name, const at::Tensor& like, at::Tensor& into) {
            if (!like.defined()) return;
            if (!archive.try_read(k + "." + name, into, true) || into.sizes() != like.sizes()) {
              throw std::runtime_error("adafactor: checkpoint state " + k + "." + name +
                                       " is missing or has the wrong shape (another variant or model?)");
            }
            into = into.to(p.device());
          };
          read("m", expected.m, s.m);
          read("row", expected.row, s.row);
          read("col", expected.col, s.col);
          read("v", expected.v, s.v);
        }
        groups_[g].state[i] = std::move(s);  // empty when the parameter had no gradient yet
      }
    }
  }

 private:
  struct Group {
    Options options;
    double lr = 0;  // options.lr * the current LR factor
    std::vector<at::Tensor> params;
    std::vector<State> state;
  };
  static std::string key(size_t g) { return "group" + std::to_string(g); }
  static std::string key(size_t g, size_t i) { return key(g) + ".param" + std::to_string(i); }

  std::vector<Group> groups_;
};

}  // namespace

ASSAY_PLUGIN("adafactor", "1.0.0") {
  plugin.add<Adafactor>("adafactor",
                        "Adafactor: factored second moment; variant \"paper\" (Zhao et al. 2025) or \"torch\" "
                        "(torch.optim.Adafactor)");
}
