// AdamW (torch::optim::AdamW): Adam with decoupled weight decay; weight_decay = 0 is Adam.
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
  bool amsgrad = false;
  void fields(assay::Fields& f) {
    f("lr", lr, "learning rate").min(0);
    f("beta1", beta1, "decay of the first-moment estimate").range(0, 1);
    f("beta2", beta2, "decay of the second-moment estimate").range(0, 1);
    f("eps", eps, "added to the denominator").min(0);
    f("weight_decay", weight_decay, "decoupled weight decay (p -= lr * weight_decay * p)").min(0);
    f("amsgrad", amsgrad, "use the running maximum of the second moment");
  }
};

torch::optim::AdamWOptions to_torch(const AdamWOptions& o) {
  return torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay).amsgrad(o.amsgrad);
}

class AdamW : public assay::TorchOptimizerAdapter<torch::optim::AdamW, torch::optim::AdamWOptions> {
 public:
  using Options = AdamWOptions;
  AdamW(const Options& options, const assay::Context& context) : TorchOptimizerAdapter(options, context, &to_torch) {}
};

}  // namespace

ASSAY_PLUGIN("adamw", "1.0.0") { plugin.add<AdamW>("adamw", "Adam with decoupled weight decay"); }
