// SOAP (Vyas, Morwani, Zhao, ..., Kakade, ICLR 2025; code nikhilvyas/SOAP): Adam run in the eigenbasis
// of Shampoo's preconditioner, the basis refreshed every `precondition_frequency` steps by one power
// iteration + QR. Written from shared/papers/soap.md (the contract); per parameter tensor with gradient G:
//
// First call (the step counter t stays 0; no parameter update, no weight decay):
//   for each preconditioned dim k: GG_k = sb GG_k + (1 - sb) G_(k) G_(k)^T (G_(k): G unfolded along k,
//   i.e. G contracted with itself over all other dims), Q_k = eigh(GG_k)'s eigenvectors by DESCENDING
//   eigenvalue; m = v = 0.
// Every later call:
//   1. Gp = project(G) (Q_k^T applied along every preconditioned dim k; the other dims pass through)
//   2. t += 1; m = b1 m + (1 - b1) Gp; v = b2 v + (1 - b2) Gp^2
//   3. step = lr sqrt(1 - b2^t) / (1 - b1^t)  (step = lr when correct_bias = false)
//   4. u = project_back(m / (sqrt(v) + eps)) (Q_k along every preconditioned dim);
//      normalize_grads: u /= 1e-30 + rms(u)
//   5. p -= step u; then p -= lr wd p
//   6. m = project_back(m); update GG_k with G; if t % precondition_frequency == 0, for each dim k:
//      est = diag(Q_k^T GG_k Q_k), order = argsort(est, descending), v permuted along k by `order`,
//      Q_k = qr(GG_k Q_k[:, order]).Q; then m = project(m).
//      Without a refresh in step 6, project(project_back(m)) = m exactly (Q_k orthogonal), so the
//      round trip is done only on refresh steps (it saves four tensor contractions per step; the float64
//      reference does it every step, literally, and the tests confirm the equivalence).
//
// Which dims are preconditioned (as in the reference): every dim of size <= max_precond_dim; a 1-D
// parameter only with precondition_1d (and size <= max_precond_dim); 0-D parameters never (a 1x1 basis
// is +-1 and changes nothing). merge_dims (for parameters of 2 or more dims): the reference's dim merger,
// applied to the parameter's shape: walk the dims in order keeping a running product; when multiplying
// in the next dim would exceed max_precond_dim, close the running group (or, if it is still 1, emit the
// dim alone) and start again from that dim. E.g. max 6: [2, 3, 4, 5] -> [6, 4, 5]; [8, 2] -> [8, 2];
// [6, 7] -> [6, 7]; max 10000: [6, 7] -> [42] (then preconditioned as one 42x42 factor, even without
// precondition_1d, as in the reference). Size-1 dims are absorbed. Every projection, factor and moment
// then works on that merged view. (The reference's data_format = "channels_last", which permutes 4-D
// gradients before merging, is not offered: only the default channels-first layout.)
//
// Numerics: the preconditioner state (GG_k, Q_k), the moments m, v and all projections are kept in
// `precision` (float32 by default, as the reference); the update is cast to the parameter's dtype. eigh
// is taken of GG_k + 1e-30 I (as the reference) and retried in float64 if it fails to converge. Ties
// between eigenvalue estimates keep their current order (stable sort).
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct SoapOptions {
  double lr = 3e-3;
  double beta1 = 0.95;
  double beta2 = 0.95;
  double shampoo_beta = -1;
  double eps = 1e-8;
  double weight_decay = 0.01;
  int64_t precondition_frequency = 10;
  int64_t max_precond_dim = 10000;
  bool merge_dims = false;
  bool precondition_1d = false;
  bool normalize_grads = false;
  bool correct_bias = true;
  std::string precision = "float32";
  void fields(assay::Fields& f) {
    f("lr", lr, "learning rate").min(0);
    f("beta1", beta1, "decay of Adam's first moment (kept in the eigenbasis)").range(0, 1);
    f("beta2", beta2, "decay of Adam's second moment (kept in the eigenbasis)").range(0, 1);
    f("shampoo_beta", shampoo_beta, "decay of the preconditioner factors GG_k; < 0 means: use beta2").range(-1, 1);
    f("eps", eps, "added to sqrt(v) in Adam's denominator").min(0);
    f("weight_decay", weight_decay, "decoupled weight decay after the update (p -= lr * weight_decay * p)").min(0);
    f("precondition_frequency", precondition_frequency, "steps between eigenbasis refreshes (power iteration + QR)")
        .min(1);
    f("max_precond_dim", max_precond_dim, "dims larger than this are not preconditioned (they pass through)").min(0);
    f("merge_dims", merge_dims, "merge consecutive dims while their product stays <= max_precond_dim (>= 2-D params)");
    f("precondition_1d", precondition_1d, "also precondition 1-D parameters (one n x n factor)");
    f("normalize_grads", normalize_grads, "divide each tensor's update by its RMS");
    f("correct_bias", correct_bias, "Adam bias correction: step = lr sqrt(1 - beta2^t) / (1 - beta1^t)");
    f("precision", precision, "dtype of the factors, eigenbases, moments and projections")
        .choices({"float32", "float64"});
  }
};

/// The reference's dim merger (see the file comment).
std::vector<int64_t> merged_shape(at::IntArrayRef shape, int64_t max_precond_dim) {
  std::vector<int64_t> out;
  int64_t running = 1;
  for (const int64_t size : shape) {
    if (running * size > max_precond_dim) {
      if (running > 1) {
        out.push_back(running);
        running = size;
      } else {
        out.push_back(size);
        running = 1;
      }
    } else {
      running *= size;
    }
  }
  if (running > 1 || out.empty()) out.push_back(running);
  return out;
}

/// x contracted with itself over every dim but k: the [n_k, n_k] matrix X_(k) X_(k)^T.
at::Tensor contract_except(const at::Tensor& x, int64_t k) {
  if (x.dim() == 1) return at::outer(x, x);
  std::vector<int64_t> others;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d != k) others.push_back(d);
  }
  return at::tensordot(x, x, others, others);
}

/// Applies Q_k^T (back = false) or Q_k (back = true) along every dim k with a basis; dims without one
/// pass through. Each contraction consumes dim 0 and appends the new dim last, so after all dims the
/// original order is restored.
at::Tensor project(at::Tensor x, const std::vector<at::Tensor>& bases, bool back) {
  for (const auto& q : bases) x = q.defined() ? at::tensordot(x, q, {0}, {back ? 1 : 0}) : x.movedim(0, -1);
  return x.contiguous();
}

/// Eigenvectors of a symmetric matrix, columns by descending eigenvalue.
at::Tensor eigenbasis(const at::Tensor& gg) {
  const auto eye = at::eye(gg.size(0), gg.options());
  at::Tensor vectors;
  try {
    vectors = std::get<1>(at::linalg_eigh(gg + 1e-30 * eye));
  } catch (const c10::Error&) {  // did not converge: retry in float64, as the reference
    vectors = std::get<1>(at::linalg_eigh(gg.to(at::kDouble) + 1e-30 * eye.to(at::kDouble))).to(gg.scalar_type());
  }
  return vectors.flip({1}).contiguous();
}

/// Everything SOAP keeps for one parameter tensor.
struct ParamState {
  std::vector<int64_t> shape;        ///< the view every projection works on (merged or the param's own)
  std::vector<bool> preconditioned;  ///< per dim of `shape`
  bool started = false;              ///< the first call (factor init + eigh) has happened
  int64_t step = 0;                  ///< Adam steps taken (the first call does not count)
  at::Tensor exp_avg, exp_avg_sq;    ///< m, v in the eigenbasis, shaped `shape`
  std::vector<at::Tensor> gg, q;     ///< per dim of `shape`; undefined where the dim passes through
};

struct Group {
  SoapOptions options;
  double base_lr = 0;
  std::vector<at::Tensor> params;
  std::vector<ParamState> states;
};

class Soap : public assay::Optimizer {
 public:
  using Options = SoapOptions;

  Soap(const Options& options, const assay::Context& context) {
    for (auto& group : assay::groups_with_options(context, options)) {
      Group g;
      g.options = group.options;
      if (g.options.correct_bias && g.options.beta1 >= 1) {
        throw std::invalid_argument("soap: beta1 = 1 with correct_bias = true divides by 1 - beta1^t = 0");
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
        if (grad.is_sparse()) throw std::invalid_argument("soap: sparse gradients are not supported");
        update(p, grad, group.states[i], group.options, lr);
      }
    }
  }

  void set_lr_factor(double factor) override { lr_factor_ = factor; }
  double lr() const override { return groups_.empty() ? 0.0 : groups_.front().base_lr * lr_factor_; }

  void save(torch::serialize::OutputArchive& archive) const override {
    archive.write("soap.lr_factor", torch::tensor(lr_factor_, torch::kDouble));
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (size_t i = 0; i < groups_[g].states.size(); ++i) {
        const auto& s = groups_[g].states[i];
        const std::string key = prefix(g, i);
        archive.write(key + "started", torch::tensor(static_cast<int64_t>(s.started)));
        archive.write(key + "step", torch::tensor(s.step));
        if (!s.started) continue;
        archive.write(key + "exp_avg", s.exp_avg);
        archive.write(key + "exp_avg_sq", s.exp_avg_sq);
        for (size_t k = 0; k < s.q.size(); ++k) {
          if (!s.q[k].defined()) continue;
          archive.write(key + "gg" + std::to_string(k), s.gg[k]);
          archive.write(key + "q" + std::to_string(k), s.q[k]);
        }
      }
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    lr_factor_ = read(archive, "soap.lr_factor").item<double>();
    for (size_t g = 0; g < groups_.size(); ++g) {
      const auto dtype = dtype_of(groups_[g].options);
      for (size_t i = 0; i < groups_[g].states.size(); ++i) {
        auto& s = groups_[g].states[i];
        const auto& p = groups_[g].params[i];
        const std::string key = prefix(g, i);
        ParamState loaded = layout(p, groups_[g].options);
        loaded.started = read(archive, key + "started").item<int64_t>() != 0;
        loaded.step = read(archive, key + "step").item<int64_t>();
        if (loaded.started) {
          auto restore = [&](const std::string& name, at::IntArrayRef expected) {
            at::Tensor t = read(archive, key + name);
            if (t.sizes() != expected) {
              throw std::runtime_error("soap: checkpoint's " + key + name + " has another shape than this parameter's");
            }
            return t.to(p.device(), dtype).contiguous();
          };
          loaded.exp_avg = restore("exp_avg", loaded.shape);
          loaded.exp_avg_sq = restore("exp_avg_sq", loaded.shape);
          for (size_t k = 0; k < loaded.shape.size(); ++k) {
            if (!loaded.preconditioned[k]) continue;
            const int64_t n = loaded.shape[k];
            loaded.gg[k] = restore("gg" + std::to_string(k), {n, n});
            loaded.q[k] = restore("q" + std::to_string(k), {n, n});
          }
        }
        s = std::move(loaded);
      }
    }
  }

 private:
  static c10::ScalarType dtype_of(const SoapOptions& o) { return o.precision == "float64" ? at::kDouble : at::kFloat; }
  static std::string prefix(size_t group, size_t param) {
    return "soap.group" + std::to_string(group) + ".param" + std::to_string(param) + ".";
  }
  static at::Tensor read(torch::serialize::InputArchive& archive, const std::string& key) {
    at::Tensor t;
    if (!archive.try_read(key, t)) throw std::runtime_error("soap: checkpoint has no " + key);
    return t;
  }

  /// The working view of p and which of its dims are preconditioned; no tensors yet.
  static ParamState layout(const at::Tensor& p, const SoapOptions& o) {
    ParamState s;
    s.shape = o.merge_dims && p.dim() > 1 ? merged_shape(p.sizes(), o.max_precond_dim) : p.sizes().vec();
    for (const int64_t size : s.shape) {
      const bool allowed = p.dim() == 1 ? o.precondition_1d : true;
      s.preconditioned.push_back(allowed && size <= o.max_precond_dim);
    }
    s.gg.resize(s.shape.size());
    s.q.resize(s.shape.size());
    return s;
  }

  static void accumulate_factors(ParamState& s, const at::Tensor& g, double shampoo_beta) {
    for (size_t k = 0; k < s.gg.size(); ++k) {
      if (s.gg[k].defined()) s.gg[k].lerp_(contract_except(g, static_cast<int64_t>(k)), 1 - shampoo_beta);
    }
  }

  static void update(at::Tensor& p, const at::Tensor& grad, ParamState& s, const SoapOptions& o, double lr) {
    const double b1 = o.beta1, b2 = o.beta2;
    const double shampoo_beta = o.shampoo_beta >= 0 ? o.shampoo_beta : o.beta2;
    const at::Tensor g = grad.detach().to(dtype_of(o)).reshape(s.shape);

    if (!s.started) {  // first call: factors and eigenbases only
      for (size_t k = 0; k < s.shape.size(); ++k) {
        if (s.preconditioned[k]) s.gg[k] = at::zeros({s.shape[k], s.shape[k]}, g.options());
      }
      accumulate_factors(s, g, shampoo_beta);
      for (size_t k = 0; k < s.gg.size(); ++k) {
        if (s.gg[k].defined()) s.q[k] = eigenbasis(s.gg[k]);
      }
      s.exp_avg = at::zeros_like(g, at::MemoryFormat::Contiguous);
      s.exp_avg_sq = at::zeros_like(g, at::MemoryFormat::Contiguous);
      s.started = true;
      return;
    }

    // 1-3: Adam's moments on the projected gradient.
    const at::Tensor projected = project(g, s.q, false);
    s.step += 1;
    s.exp_avg.mul_(b1).add_(projected, 1 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(projected, projected, 1 - b2);
    double step_size = lr;
    if (o.correct_bias) {
      const double t = static_cast<double>(s.step);
      step_size *= std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    }
    // 4-5: the update, back in the parameter's basis, then decoupled weight decay.
    at::Tensor u = project(s.exp_avg / (s.exp_avg_sq.sqrt() + o.eps), s.q, true);
    if (o.normalize_grads) u = u / (u.square().mean().sqrt() + 1e-30);
    p.add_(u.reshape(p.sizes()).to(p.scalar_type()), -step_size);
    if (o.weight_decay > 0) p.add_(p, -lr * o.weight_decay);

    // 6: factors with this step's gradient; every precondition_frequency steps a new eigenbasis, with m
    // carried over through the parameter's basis and v permuted with the eigenvalue order.
    const bool refresh = s.step % o.precondition_frequency == 0;
    if (refresh) s.exp_avg = project(s.exp_avg, s.q, true);
    accumulate_factors(s, g, shampoo_beta);
    if (!refresh) return;
    for (size_t k = 0; k < s.q.size(); ++k) {
      if (!s.q[k].defined()) continue;
      const at::Tensor power = s.gg[k].mm(s.q[k]);  // one power-iteration step on every column
      const at::Tensor estimates = (s.q[k] * power).sum(0);  // diag(Q^T GG Q)
      const at::Tensor order = std::get<1>(estimates.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
      s.exp_avg_sq = s.exp_avg_sq.index_select(static_cast<int64_t>(k), order).contiguous();
      s.q[k] = std::get<0>(at::linalg_qr(power.index_select(1, order))).contiguous();
    }
    s.exp_avg = project(s.exp_avg, s.q, false);
  }

  std::vector<Group> groups_;
  double lr_factor_ = 1.0;
};

}  // namespace

ASSAY_PLUGIN("soap", "1.0.0") {
  plugin.add<Soap>("soap", "SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al. 2025)");
}
