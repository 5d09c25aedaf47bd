// AdamW (torch::optim::AdamW): Adam with weight decay applied as weight_decay_mode says:
//   decoupled   (default, torch's AdamW):   p <- p (1 - lr wd), then the Adam step
//   independent (the optimizer-comparison paper's "LR-independent" decay): p <- p (1 - wd) per step
//   l2          (torch's Adam weight_decay): the Adam step on g + wd p (the decay enters m and v)
// weight_decay = 0 is Adam in every mode. The modes other than "decoupled" run torch's AdamW with
// weight_decay 0 around the plugin's own decay; per-group overrides may mix modes.
#include <assay/assay.hpp>
#include <assay/torch_optimizer.hpp>

#include <torch/optim/adamw.h>

namespace {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  std::string weight_decay_mode = "decoupled";
  bool amsgrad = false;
  void fields(assay::Fields& f) {
    f("lr", lr, "learning rate").min(0);
    f("beta1", beta1, "decay of the first-moment estimate").range(0, 1);
    f("beta2", beta2, "decay of the second-moment estimate").range(0, 1);
    f("eps", eps, "added to the denominator").min(0);
    f("weight_decay", weight_decay, "weight decay coefficient, applied as weight_decay_mode says").min(0);
    f("weight_decay_mode", weight_decay_mode,
      "decoupled: p <- p (1 - lr weight_decay) (AdamW); independent: p <- p (1 - weight_decay) per step, "
      "LR-independent; l2: weight_decay p added to the gradient (Adam)")
        .choices({"decoupled", "independent", "l2"});
    f("amsgrad", amsgrad, "use the running maximum of the second moment");
  }
};

torch::optim::AdamWOptions to_torch(const AdamWOptions& o) {
  return torch::optim::AdamWOptions(o.lr)
      .betas({o.beta1, o.beta2})
      .eps(o.eps)
      .weight_decay(o.weight_decay_mode == "decoupled" ? o.weight_decay : 0.0)
      .amsgrad(o.amsgrad);
}

class AdamW : public assay::TorchOptimizerAdapter<torch::optim::AdamW, torch::optim::AdamWOptions> {
 public:
  using Options = AdamWOptions;
  AdamW(const Options& options, const assay::Context& context) : TorchOptimizerAdapter(options, context, &to_torch) {
    // Per torch param group (the model's non-empty groups, in the adapter's order): the plugin's own decay.
    for (auto& group : context.model->param_groups()) {
      if (group.params.empty()) continue;
      const Options o = assay::options_for_group(context, group.name, options);
      const double wd = o.weight_decay_mode == "decoupled" ? 0.0 : o.weight_decay;
      decay_.push_back({o.weight_decay_mode == "l2" ? Decay::l2 : Decay::independent, wd});
    }
  }

  void step() override {
    auto& groups = optimizer_->param_groups();
    // l2: torch's step sees g + wd p in place of each gradient; the original gradients are put back after.
    std::vector<std::pair<at::Tensor, at::Tensor>> swapped;  // (parameter, its own gradient)
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < groups.size(); ++i) {
        if (decay_[i].weight_decay == 0) continue;
        for (auto& p : groups[i].params()) {
          if (!p.grad().defined()) continue;  // as torch's step, parameters without a gradient are left alone
          if (decay_[i].kind == Decay::independent) {
            p.mul_(1.0 - decay_[i].weight_decay);
          } else {
            swapped.emplace_back(p, p.grad());
            p.mutable_grad() = p.grad().add(p, decay_[i].weight_decay);
          }
        }
      }
    }
    try {
      optimizer_->step();
    } catch (...) {
      for (auto& [p, grad] : swapped) p.mutable_grad() = grad;
      throw;
    }
    for (auto& [p, grad] : swapped) p.mutable_grad() = grad;
  }

 private:
  struct Decay {
    enum Kind { independent, l2 } kind;
    double weight_decay;  // 0 when torch applies it (decoupled) or there is none
  };
  std::vector<Decay> decay_;
};

}  // namespace

ASSAY_PLUGIN("adamw", "1.0.0") { plugin.add<AdamW>("adamw", "Adam with decoupled weight decay"); }
