// Adalayer (Zhao, Morwani, Brandfonbrener, Vyas, Kakade, "Deconstructing what makes a good optimizer for
// language models", ICLR 2025): Adam with one second-moment scalar per block of a parameter tensor.
//
//   m <- beta1 m + (1 - beta1) g                                  (per element)
//   v <- beta2 v + (1 - beta2) mean_block(g^2)                    (per block)
//   theta <- theta - lr / bc1 * m / (sqrt(v / bc2) + eps),        bc_i = 1 - beta_i^t
//
// Blocks come from the model's named parameter groups (Model::param_groups()):
//   - qkv_group: every tensor is a fused QKV, split into 3 equal blocks along dim 0 (one scalar each);
//     a fused QKV bias [3d] is split the same way.
//   - last_layer_group: one scalar per index of dim 0, i.e. per output row of a [V, d] weight; a bias
//     [V] in this group gets one scalar per element (its element i belongs to output row i).
//   - every other tensor, the norm_group's LayerNorm vectors included: one scalar per tensor.
// Variants:
//   - "adalayer": the update above for every tensor.
//   - "frozen": during each tensor's first freeze_after steps the parameters do not move (learning rate
//     0, no weight decay), m is accumulated as usual and v is the running mean of mean_block(g^2) over
//     those steps. Afterwards v stays fixed, except in the last-layer and norm groups, where it
//     continues as v <- beta2 v + (1 - beta2) mean_block(g^2). v is never bias-corrected (bc2 = 1),
//     as it starts from an average rather than from zero; bc1 counts the freeze steps. (As in the paper's
//     code, whose scheduler holds lr at 0 for t_freeze steps; the host's LR schedule here is not shifted,
//     so a warmup counted from step 0 is partly spent during the freeze.)
//   - "sgd_adaptive_last": v = 1 (no adaptivity, no eps: theta -= lr / bc1 * m) everywhere except in
//     the last-layer and norm groups, which use Adalayer; give those groups their own learning rate
//     with [optimizer.groups.<group>] lr = ... (the paper's lr_last).
// Weight decay (applied before the update): "decoupled" p <- p (1 - lr wd), or "independent"
// p <- p (1 - wd) per step. Tensors without a gradient are skipped (their step count does not advance).
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct AdalayerOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-15;
  double weight_decay = 0.0;
  std::string weight_decay_mode = "decoupled";
  std::string variant = "adalayer";
  int64_t freeze_after = 1000;
  std::string qkv_group = "qkv";
  std::string last_layer_group = "head";
  std::string norm_group = "norms";
  void fields(assay::Fields& f) {
    f("lr", lr, "learning rate").min(0);
    f("beta1", beta1, "decay of the momentum m (per element); < 1").range(0, 1);
    f("beta2", beta2, "decay of the second-moment scalars v (one per block); < 1").range(0, 1);
    f("eps", eps, "added to sqrt(v / bc2) in the denominator (paper: 1e-15)").min(0);
    f("weight_decay", weight_decay, "weight decay coefficient, applied as weight_decay_mode says").min(0);
    f("weight_decay_mode", weight_decay_mode,
      "decoupled: p <- p (1 - lr weight_decay); independent: p <- p (1 - weight_decay) per step")
        .choices({"decoupled", "independent"});
    f("variant", variant,
      "adalayer: every tensor adaptive; frozen: v averaged over the first freeze_after steps at lr 0, then "
      "frozen except last layer and norms; sgd_adaptive_last: v = 1 except last layer and norms")
        .choices({"adalayer", "frozen", "sgd_adaptive_last"});
    f("freeze_after", freeze_after, "variant frozen: steps at lr 0 that estimate v before it is frozen").min(1);
    f("qkv_group", qkv_group, "parameter group of fused QKV tensors (3 blocks along dim 0, one scalar each)");
    f("last_layer_group", last_layer_group, "parameter group of the last layer (one scalar per output row)");
    f("norm_group", norm_group, "parameter group of the LayerNorm vectors (one scalar per tensor)");
  }
};

enum class Variant { adalayer, frozen, sgd_adaptive_last };
enum class Layout { tensor, qkv, rows };  // one scalar per tensor / per Q, K, V block / per index of dim 0

class Adalayer : public assay::Optimizer {
 public:
  using Options = AdalayerOptions;

  Adalayer(const Options& options, const assay::Context& context) : options_(options) {
    variant_ = options.variant == "frozen"              ? Variant::frozen
               : options.variant == "sgd_adaptive_last" ? Variant::sgd_adaptive_last
                                                        : Variant::adalayer;
    for (auto& group : assay::groups_with_options(context, options)) {
      const Options& o = group.options;
      check_group_options(group.name, o);
      groups_.push_back({o, o.lr, o.weight_decay_mode == "independent"});
      const Layout layout = group.name == options.qkv_group          ? Layout::qkv
                            : group.name == options.last_layer_group ? Layout::rows
                                                                     : Layout::tensor;
      const bool last_or_norm = group.name == options.last_layer_group || group.name == options.norm_group;
      for (auto& p : group.params) {
        if (layout == Layout::qkv && (p.dim() == 0 || p.size(0) % 3 != 0)) {
          throw std::invalid_argument("adalayer: a tensor of shape " + shape_of(p) + " in qkv_group '" +
                                      group.name + "' cannot be split into 3 equal blocks along dim 0");
        }
        Slot s;
        s.param = p;
        s.group = groups_.size() - 1;
        s.layout = layout;
        s.last_or_norm = last_or_norm;
        s.adaptive = variant_ != Variant::sgd_adaptive_last || last_or_norm;
        torch::NoGradGuard no_grad;
        s.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Contiguous);
        auto b = blocked(p, layout);
        std::vector<int64_t> v_shape(static_cast<size_t>(b.dim()), 1);
        v_shape[0] = b.size(0);
        // Non-adaptive tensors keep v = 1 (unused by the update, kept so the state reads as the paper's).
        s.exp_avg_sq = s.adaptive ? torch::zeros(v_shape, p.options()) : torch::ones(v_shape, p.options());
        slots_.push_back(std::move(s));
      }
    }
  }

  void step() override {
    torch::NoGradGuard no_grad;
    for (auto& s : slots_) {
      const at::Tensor& grad = s.param.grad();
      if (!grad.defined()) continue;
      if (grad.is_sparse()) throw std::runtime_error("adalayer: sparse gradients are not supported");
      const Options& o = groups_[s.group].options;
      const double lr = groups_[s.group].base_lr * factor_;
      const int64_t t = ++s.step;

      s.exp_avg.lerp_(grad, 1.0 - o.beta1);
      if (variant_ == Variant::frozen && t <= options_.freeze_after) {
        // Estimation phase: v = running mean of mean_block(g^2) over steps 1..t; parameters stay put.
        s.exp_avg_sq.lerp_(block_mean_square(grad, s.layout), 1.0 / static_cast<double>(t));
        continue;
      }

      if (o.weight_decay != 0) {
        s.param.mul_(1.0 - (groups_[s.group].lr_independent_decay ? 1.0 : lr) * o.weight_decay);
      }
      const double step_size = lr / (1.0 - std::pow(o.beta1, static_cast<double>(t)));
      if (!s.adaptive) {  // sgd_adaptive_last outside the last layer and norms: v = 1
        s.param.add_(s.exp_avg, -step_size);
        continue;
      }
      double bc2 = 1.0;
      if (variant_ == Variant::frozen) {
        if (s.last_or_norm) s.exp_avg_sq.lerp_(block_mean_square(grad, s.layout), 1.0 - o.beta2);
      } else {
        s.exp_avg_sq.lerp_(block_mean_square(grad, s.layout), 1.0 - o.beta2);
        bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
      }
      auto denom = s.exp_avg_sq.div(bc2).sqrt_().add_(o.eps);
      blocked(s.param, s.layout).addcdiv_(blocked(s.exp_avg, s.layout), denom, -step_size);
    }
  }

  void set_lr_factor(double factor) override { factor_ = factor; }

  double lr() const override { return (groups_.empty() ? options_.lr : groups_.front().base_lr) * factor_; }

  void save(torch::serialize::OutputArchive& archive) const override {
    std::vector<int64_t> steps;
    for (const auto& s : slots_) steps.push_back(s.step);
    archive.write("steps", torch::tensor(steps, torch::kLong));
    for (size_t i = 0; i < slots_.size(); ++i) {
      archive.write("exp_avg_" + std::to_string(i), slots_[i].exp_avg, /*is_buffer=*/true);
      archive.write("exp_avg_sq_" + std::to_string(i), slots_[i].exp_avg_sq, /*is_buffer=*/true);
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    at::Tensor steps;
    archive.read("steps", steps);
    if (steps.dim() != 1 || steps.size(0) != static_cast<int64_t>(slots_.size())) {
      throw std::runtime_error("adalayer: the checkpoint holds state for " + std::to_string(steps.numel()) +
                               " tensors, this model has " + std::to_string(slots_.size()));
    }
    std::vector<at::Tensor> m(slots_.size()), v(slots_.size());
    for (size_t i = 0; i < slots_.size(); ++i) {  // read and check everything before changing any state
      archive.read("exp_avg_" + std::to_string(i), m[i], /*is_buffer=*/true);
      archive.read("exp_avg_sq_" + std::to_string(i), v[i], /*is_buffer=*/true);
      if (!m[i].sizes().equals(slots_[i].exp_avg.sizes()) || !v[i].sizes().equals(slots_[i].exp_avg_sq.sizes())) {
        throw std::runtime_error("adalayer: checkpoint state of tensor " + std::to_string(i) + " has shapes " +
                                 shape_of(m[i]) + " / " + shape_of(v[i]) + ", expected " +
                                 shape_of(slots_[i].exp_avg) + " / " + shape_of(slots_[i].exp_avg_sq));
      }
    }
    torch::NoGradGuard no_grad;
    auto cpu_steps = steps.to(torch::kCPU, torch::kLong).contiguous();
    for (size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].step = cpu_steps.data_ptr<int64_t>()[i];
      slots_[i].exp_avg.copy_(m[i]);
      slots_[i].exp_avg_sq.copy_(v[i]);
    }
  }

 private:
  struct Group {
    Options options;
    double base_lr;
    bool lr_independent_decay;  // weight_decay_mode = "independent"
  };
  struct Slot {
    at::Tensor param;
    size_t group = 0;
    Layout layout = Layout::tensor;
    bool last_or_norm = false;  // in last_layer_group or norm_group
    bool adaptive = true;       // false: v = 1 (sgd_adaptive_last outside the last layer and norms)
    at::Tensor exp_avg;         // m, shaped like the parameter
    at::Tensor exp_avg_sq;      // v, [blocks, 1, ...]: broadcasts against blocked(param)
    int64_t step = 0;
  };

  /// A view whose dim 0 indexes the blocks that share one second-moment scalar.
  static at::Tensor blocked(const at::Tensor& t, Layout layout) {
    switch (layout) {
      case Layout::qkv: return t.unflatten(0, {3, t.size(0) / 3});
      case Layout::rows: return t.dim() == 0 ? t.unsqueeze(0) : t;
      case Layout::tensor: break;
    }
    return t.unsqueeze(0);
  }

  /// mean(g^2) per block, shaped like v.
  static at::Tensor block_mean_square(const at::Tensor& grad, Layout layout) {
    auto squared = blocked(grad, layout).square();
    if (squared.dim() == 1) return squared;  // one element per block
    std::vector<int64_t> dims;
    for (int64_t d = 1; d < squared.dim(); ++d) dims.push_back(d);
    return squared.mean(dims, /*keepdim=*/true);
  }

  void check_group_options(const std::string& group, const Options& o) const {
    auto differs = [&](const char* key) {
      throw std::invalid_argument(std::string("adalayer: '") + key + "' applies to the whole model and cannot be set "
                                  "per group (group '" + group + "')");
    };
    if (o.variant != options_.variant) differs("variant");
    if (o.freeze_after != options_.freeze_after) differs("freeze_after");
    if (o.qkv_group != options_.qkv_group) differs("qkv_group");
    if (o.last_layer_group != options_.last_layer_group) differs("last_layer_group");
    if (o.norm_group != options_.norm_group) differs("norm_group");
    if (o.beta1 >= 1 || o.beta2 >= 1) {
      throw std::invalid_argument("adalayer: beta1 and beta2 must be < 1 (group '" + group + "')");
    }
  }

  static std::string shape_of(const at::Tensor& t) {
    std::ostringstream out;
    out << t.sizes();
    return out.str();
  }

  Options options_;
  Variant variant_ = Variant::adalayer;
  std::vector<Group> groups_;
  std::vector<Slot> slots_;
  double factor_ = 1.0;
};

}  // namespace

ASSAY_PLUGIN("adalayer", "1.0.0") {
  plugin.add<Adalayer>("adalayer",
                       "Adam with one second-moment scalar per tensor / QKV block / last-layer row (Adalayer)");
}
