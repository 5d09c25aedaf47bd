// Stochastic gradient descent (torch::optim::SGD: momentum, dampening, Nesterov) with either torch's L2
// weight decay (wd p added to the gradient, so it also enters the momentum buffer) or, with
// decoupled_weight_decay, SGDW's: p <- p (1 - lr wd) before the step, outside the momentum buffer (as
// timm's SGDW, which the optimizer-comparison paper uses). torch::optim::SGD has no decoupled mode, so the
// plugin runs it with weight_decay 0 and decays the parameters itself.
#include <assay/assay.hpp>
#include <assay/torch_optimizer.hpp>

#include <torch/optim/sgd.h>

namespace {

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;
  void fields(assay::Fields& f) {
    f("lr", lr, "learning rate").min(0);
    f("momentum", momentum, "momentum factor").range(0, 1);
    f("dampening", dampening, "dampening of the momentum buffer").range(0, 1);
    f("nesterov", nesterov, "Nesterov momentum (needs momentum > 0 and dampening 0)");
    f("weight_decay", weight_decay, "weight decay coefficient, applied as decoupled_weight_decay says").min(0);
    f("decoupled_weight_decay", decoupled_weight_decay,
      "true: SGDW, p <- p (1 - lr weight_decay) before the step; false: L2 (weight_decay p added to the gradient)");
  }
};

torch::optim::SGDOptions to_torch(const SgdOptions& o) {
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
    throw std::invalid_argument("sgd: nesterov = true needs momentum > 0 and dampening = 0");
  }
  return torch::optim::SGDOptions(o.lr).momentum(o.momentum).dampening(o.dampening).nesterov(o.nesterov).weight_decay(
      o.decoupled_weight_decay ? 0.0 : o.weight_decay);
}

class Sgd : public assay::TorchOptimizerAdapter<torch::optim::SGD, torch::optim::SGDOptions> {
 public:
  using Options = SgdOptions;
  Sgd(const Options& options, const assay::Context& context) : TorchOptimizerAdapter(options, context, &to_torch) {
    // Per torch param group (the model's non-empty groups, in the adapter's order): the decoupled decay.
    for (auto& group : context.model->param_groups()) {
      if (group.params.empty()) continue;
      const Options o = assay::options_for_group(context, group.name, options);
      decoupled_decay_.push_back(o.decoupled_weight_decay ? o.weight_decay : 0.0);
    }
  }

  void step() override {
    auto& groups = optimizer_->param_groups();
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < groups.size(); ++i) {
        if (decoupled_decay_[i] == 0) continue;
        const double keep = 1.0 - groups[i].options().get_lr() * decoupled_decay_[i];
        for (auto& p : groups[i].params()) {
          if (p.grad().defined()) p.mul_(keep);  // as torch's step, parameters without a gradient are left alone
        }
      }
    }
    optimizer_->step();
  }

 private:
  std::vector<double> decoupled_decay_;
};

}  // namespace

ASSAY_PLUGIN("sgd", "1.0.0") {
  plugin.add<Sgd>("sgd", "stochastic gradient descent with momentum (L2 or SGDW weight decay)");
}
