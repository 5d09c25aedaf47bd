// Shampoo as the SOAP paper's baseline (shared/papers/optimizers.md): P = L^{-1/root} M R^{-1/root}, with
// L, R EMAs of G G^T and G^T G, inverse roots recomputed every `precondition_frequency` steps, and
// layer-wise Adam grafting (update = ||Adam update||_F * P / ||P||_F). The paper's "1/2 power" is
// root = 2, the default (P = L^{-1/2} M R^{-1/2}); root = 4 is the original Shampoo of Gupta et al.
// Structure as in Meta's Distributed Shampoo (momentum filters the gradient before preconditioning; Adam
// grafting uses the raw gradient's second moment; the eigen inverse root shifts eigenvalues to >= 0).
//
// Per parameter tensor with gradient G, at step t = 1, 2, ... (counted per tensor):
//   M = b1 M + (1 - b1) G                         (momentum)
//   V = b2 V + (1 - b2) G^2                       (Adam grafting / Adam-only tensors)
//   GG_k = sb GG_k + (1 - sb) G_(k) G_(k)^T       for every preconditioned dim k (2-D: L and R);
//                                                 sb = shampoo_beta, or beta2 when shampoo_beta < 0
//   if t % precondition_frequency == 0, for every k: eigh(GG_k / c_s) = U diag(lambda) U^T,
//      lambda <- lambda - min(min(lambda), 0) + matrix_eps,  H_k = U diag(lambda^{-1/root}) U^T
//      i.e. (GG_k / c_s + matrix_eps I)^{-1/root}, with eigh's rounding below 0 shifted away; the epsilon
//      is added to the eigenvalues (the same as to the diagonal in exact arithmetic, but not lost to
//      float32 rounding against O(1) diagonal entries)
//   M^ = M / c1, adam = M^ / (sqrt(V / c2) + eps)     c1 = 1 - b1^t, c2 = 1 - b2^t, c_s = 1 - sb^t
//                                                      (all 1 when correct_bias = false)
//   P = H_k applied along every preconditioned dim k of M^ (2-D: H_L M^ H_R); other dims pass through
//   u = grafting "adam": ||adam||_F * P / ||P||_F      "none": P
//   p -= lr wd p (decoupled, before the update as in AdamW); p -= lr u
// Before the first inverse roots (t < precondition_frequency) the update is the grafting method's own:
// u = adam ("adam") or u = M^ ("none"). Tensors with no preconditioned dim -- 1-D and 0-D parameters, and
// tensors whose dims all exceed max_precond_dim -- always take the Adam update u = adam (whatever
// `grafting` says). Dims larger than max_precond_dim pass through unpreconditioned.
//
// Numerics: factors, inverse roots, moments and the update are computed in `precision` (float32 by
// default); the update is cast to the parameter's dtype. eigh is retried in float64 if it fails.
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct ShampooOptions {
  double lr = 3e-3;
  double beta1 = 0.95;
  double beta2 = 0.95;
  double shampoo_beta = -1;
  double eps = 1e-8;
  double matrix_eps = 1e-12;
  double weight_decay = 0.01;
  int64_t precondition_frequency = 10;
  int64_t max_precond_dim = 10000;
  int64_t root = 2;
  std::string grafting = "adam";
  bool correct_bias = true;
  std::string precision = "float32";
  void fields(assay::Fields& f) {
    f("lr", lr, "learning rate").min(0);
    f("beta1", beta1, "momentum: decay of the gradient EMA that is preconditioned").range(0, 1);
    f("beta2", beta2, "decay of the Adam second moment (grafting, 1-D parameters)").range(0, 1);
    f("shampoo_beta", shampoo_beta, "decay of the factors L, R (GG_k); < 0 means: use beta2").range(-1, 1);
    f("eps", eps, "Adam's epsilon, added to sqrt(v) (grafting, 1-D parameters)").min(0);
    f("matrix_eps", matrix_eps, "added to each factor's eigenvalues (its diagonal) before the inverse root").min(0);
    f("weight_decay", weight_decay, "decoupled weight decay before the update, as AdamW (p -= lr * weight_decay * p)").min(0);
    f("precondition_frequency", precondition_frequency, "steps between inverse-root recomputations (eigh)").min(1);
    f("max_precond_dim", max_precond_dim, "dims larger than this are not preconditioned (they pass through)").min(0);
    f("root", root, "P = L^(-1/root) M R^(-1/root); 2 = the paper's 1/2 power, 4 = original Shampoo").range(1, 64);
    f("grafting", grafting, "layer-wise grafting: adam = ||Adam update||_F * P / ||P||_F; none = P")
        .choices({"adam", "none"});
    f("correct_bias", correct_bias, "bias-correct the momentum, second moment and factors (divide by 1 - beta^t)");
    f("precision", precision, "dtype of factors, inverse roots, moments and the update").choices({"float32", "float64"});
  }
};

/// x contracted with itself over every dim but k: the [n_k, n_k] matrix X_(k) X_(k)^T.
at::Tensor contract_except(const at::Tensor& x, int64_t k) {
  std::vector<int64_t> others;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d != k) others.push_back(d);
  }
  return at::tensordot(x, x, others, others);
}

/// Applies the symmetric H_k along every dim k that has one; the other dims pass through. Each contraction
/// consumes dim 0 and appends the new dim last, so after all dims the original order is restored.
at::Tensor precondition(at::Tensor x, const std::vector<at::Tensor>& roots) {
  for (const auto& h : roots) x = h.defined() ? at::tensordot(x, h, {0}, {0}) : x.movedim(0, -1);
  return x.contiguous();
}

/// (a + matrix_eps I)^{-1/root} through eigh, eigenvalues shifted to >= 0 first.
at::Tensor inverse_root(const at::Tensor& a, int64_t root, double matrix_eps) {
  at::Tensor values, vectors;
  try {
    std::tie(values, vectors) = at::linalg_eigh(a);
  } catch (const c10::Error&) {  // did not converge: retry in float64
    std::tie(values, vectors) = at::linalg_eigh(a.to(at::kDouble));
    values = values.to(a.scalar_type());
    vectors = vectors.to(a.scalar_type());
  }
  values = values - values.min().clamp_max(0) + matrix_eps;
  return (vectors * values.pow(-1.0 / static_cast<double>(root)).unsqueeze(0)).mm(vectors.t()).contiguous();
}

struct ParamState {
  std::vector<bool> preconditioned;  ///< per dim
  bool any_preconditioned = false;
  int64_t step = 0;                  ///< steps taken on this tensor
  at::Tensor exp_avg, exp_avg_sq;    ///< M, V (V only where Adam is used)
  std::vector<at::Tensor> gg, roots; ///< per dim; undefined where the dim passes through / not yet computed
  bool have_roots = false;
};

struct Group {
  ShampooOptions options;
  double base_lr = 0;
  std::vector<at::Tensor> params;
  std::vector<ParamState> states;
};

class Shampoo : public assay::Optimizer {
 public:
  using Options = ShampooOptions;

  Shampoo(const Options& options, const assay::Context& context) {
    for (auto& group : assay::groups_with_options(context, options)) {
      Group g;
      g.options = group.options;
      if (g.options.correct_bias && g.options.beta1 >= 1) {
        throw std::invalid_argument("shampoo: beta1 = 1 with correct_bias = true divides by 1 - beta1^t = 0");
      }
      g.base_lr = g.options.lr;
      g.params = group.params;
      for (const auto& p : group.params) g.states.push_back(layout(p, g.options));
      groups_.push_back(std::move(g));
    }
  }

  void step() override {
    torch::NoGradGuard no_grad;
    for (auto& group : groups_) {
      const double lr = group.base_lr * lr_factor_;
      for (size_t i = 0; i < group.params.size(); ++i) {
        auto& p = group.params[i];
        const auto& grad = p.grad();
        if (!grad.defined()) continue;
        if (grad.is_sparse()) throw std::invalid_argument("shampoo: sparse gradients are not supported");
        update(p, grad, group.states[i], group.options, lr);
      }
    }
  }

  void set_lr_factor(double factor) override { lr_factor_ = factor; }
  double lr() const override { return groups_.empty() ? 0.0 : groups_.front().base_lr * lr_factor_; }

  void save(torch::serialize::OutputArchive& archive) const override {
    archive.write("shampoo.lr_factor", torch::tensor(lr_factor_, torch::kDouble));
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (size_t i = 0; i < groups_[g].states.size(); ++i) {
        const auto& s = groups_[g].states[i];
        const std::string key = prefix(g, i);
        archive.write(key + "step", torch::tensor(s.step));
        archive.write(key + "have_roots", torch::tensor(static_cast<int64_t>(s.have_roots)));
        if (s.step == 0) continue;
        archive.write(key + "exp_avg", s.exp_avg);
        if (s.exp_avg_sq.defined()) archive.write(key + "exp_avg_sq", s.exp_avg_sq);
        for (size_t k = 0; k < s.gg.size(); ++k) {
          if (!s.gg[k].defined()) continue;
          archive.write(key + "gg" + std::to_string(k), s.gg[k]);
          if (s.have_roots) archive.write(key + "root" + std::to_string(k), s.roots[k]);
        }
      }
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    lr_factor_ = read(archive, "shampoo.lr_factor").item<double>();
    for (size_t g = 0; g < groups_.size(); ++g) {
      const auto& o = groups_[g].options;
      for (size_t i = 0; i < groups_[g].states.size(); ++i) {
        const auto& p = groups_[g].params[i];
        const std::string key = prefix(g, i);
        ParamState loaded = layout(p, o);
        loaded.step = read(archive, key + "step").item<int64_t>();
        loaded.have_roots = read(archive, key + "have_roots").item<int64_t>() != 0;
        if (loaded.step > 0) {
          auto restore = [&](const std::string& name, at::IntArrayRef expected) {
            at::Tensor t = read(archive, key + name);
            if (t.sizes() != expected) {
              throw std::runtime_error("shampoo: checkpoint's " + key + name + " has another shape than this parameter's");
            }
            return t.to(p.device(), dtype_of(o)).contiguous();
          };
          loaded.exp_avg = restore("exp_avg", p.sizes());
          if (uses_adam(loaded, o)) loaded.exp_avg_sq = restore("exp_avg_sq", p.sizes());
          for (size_t k = 0; k < loaded.gg.size(); ++k) {
            if (!loaded.preconditioned[k]) continue;
            const int64_t n = p.size(static_cast<int64_t>(k));
            loaded.gg[k] = restore("gg" + std::to_string(k), {n, n});
            if (loaded.have_roots) loaded.roots[k] = restore("root" + std::to_string(k), {n, n});
          }
        }
        groups_[g].states[i] = std::move(loaded);
      }
    }
  }

 private:
  static c10::ScalarType dtype_of(const ShampooOptions& o) { return o.precision == "float64" ? at::kDouble : at::kFloat; }
  static std::string prefix(size_t group, size_t param) {
    return "shampoo.group" + std::to_string(group) + ".param" + std::to_string(param) + ".";
  }
  static at::Tensor read(torch::serialize::InputArchive& archive, const std::string& key) {
    at::Tensor t;
    if (!archive.try_read(key, t)) throw std::runtime_error("shampoo: checkpoint has no " + key);
    return t;
  }
  /// Whether the Adam second moment is needed: for grafting, or for tensors that are not preconditioned.
  static bool uses_adam(const ParamState& s, const ShampooOptions& o) {
    return o.grafting == "adam" || !s.any_preconditioned;
  }

  static ParamState layout(const at::Tensor& p, const ShampooOptions& o) {
    ParamState s;
    for (int64_t k = 0; k < p.dim(); ++k) {
      const bool preconditioned = p.dim() >= 2 && p.size(k) <= o.max_precond_dim;
      s.preconditioned.push_back(preconditioned);
      s.any_preconditioned = s.any_preconditioned || preconditioned;
    }
    s.gg.resize(p.dim());
    s.roots.resize(p.dim());
    return s;
  }

  static void update(at::Tensor& p, const at::Tensor& grad, ParamState& s, const ShampooOptions& o, double lr) {
    const double b1 = o.beta1, b2 = o.beta2;
    const double sb = o.shampoo_beta >= 0 ? o.shampoo_beta : o.beta2;
    const at::Tensor g = grad.detach().to(dtype_of(o));
    const bool adam = uses_adam(s, o);
    if (s.step == 0) {
      s.exp_avg = at::zeros_like(g, at::MemoryFormat::Contiguous);
      if (adam) s.exp_avg_sq = at::zeros_like(g, at::MemoryFormat::Contiguous);
      for (int64_t k = 0; k < g.dim(); ++k) {
        if (s.preconditioned[k]) s.gg[k] = at::zeros({g.size(k), g.size(k)}, g.options());
      }
    }
    s.step += 1;
    const double t = static_cast<double>(s.step);
    s.exp_avg.mul_(b1).add_(g, 1 - b1);
    if (adam) s.exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2);
    for (int64_t k = 0; k < g.dim(); ++k) {
      if (s.gg[k].defined()) s.gg[k].lerp_(contract_except(g, k), 1 - sb);
    }
    if (s.any_preconditioned && s.step % o.precondition_frequency == 0) {
      const double cs = o.correct_bias ? 1 - std::pow(sb, t) : 1.0;
      for (int64_t k = 0; k < g.dim(); ++k) {
        if (s.gg[k].defined()) s.roots[k] = inverse_root(s.gg[k] / cs, o.root, o.matrix_eps);
      }
      s.have_roots = true;
    }

    const double c1 = o.correct_bias ? 1 - std::pow(b1, t) : 1.0;
    const double c2 = o.correct_bias ? 1 - std::pow(b2, t) : 1.0;
    const at::Tensor momentum = s.exp_avg / c1;
    at::Tensor adam_update;
    if (adam) adam_update = momentum / ((s.exp_avg_sq / c2).sqrt() + o.eps);
    at::Tensor u;
    if (!s.any_preconditioned) {
      u = adam_update;
    } else if (!s.have_roots) {
      u = o.grafting == "adam" ? adam_update : momentum;
    } else {
      const at::Tensor preconditioned = precondition(momentum, s.roots);
      u = o.grafting == "adam" ? preconditioned * (adam_update.norm() / (preconditioned.norm() + 1e-30))
                               : preconditioned;
    }
    if (o.weight_decay > 0) p.add_(p, -lr * o.weight_decay);
    p.add_(u.to(p.scalar_type()), -lr);
  }

  std::vector<Group> groups_;
  double lr_factor_ = 1.0;
};

}  // namespace

ASSAY_PLUGIN("shampoo", "1.0.0") {
  plugin.add<Shampoo>("shampoo", "Shampoo with layer-wise Adam grafting (the SOAP paper's baseline)");
}
