// Stochastic gradient descent (torch::optim::SGD: momentum, dampening, Nesterov, L2 weight decay).
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
  void fields(assay::Fields& f) {
    f("lr", lr, "learning rate").min(0);
    f("momentum", momentum, "momentum factor").range(0, 1);
    f("dampening", dampening, "dampening of the momentum buffer").range(0, 1);
    f("nesterov", nesterov, "Nesterov momentum (needs momentum > 0 and dampening 0)");
    f("weight_decay", weight_decay, "L2 penalty added to the gradient").min(0);
  }
};

torch::optim::SGDOptions to_torch(const SgdOptions& o) {
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
    throw std::invalid_argument("sgd: nesterov = true needs momentum > 0 and dampening = 0");
  }
  return torch::optim::SGDOptions(o.lr).momentum(o.momentum).dampening(o.dampening).nesterov(o.nesterov).weight_decay(
      o.weight_decay);
}

class Sgd : public assay::TorchOptimizerAdapter<torch::optim::SGD, torch::optim::SGDOptions> {
 public:
  using Options = SgdOptions;
  Sgd(const Options& options, const assay::Context& context) : TorchOptimizerAdapter(options, context, &to_torch) {}
};

}  // namespace

ASSAY_PLUGIN("sgd", "1.0.0") { plugin.add<Sgd>("sgd", "stochastic gradient descent with momentum"); }
