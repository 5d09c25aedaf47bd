// Signum (Bernstein et al. 2018, "signSGD"; as in Zhao et al. 2025), per parameter:
//   p <- p * (1 - lr * weight_decay)            (decoupled weight decay, Lion's, before the update)
//   m <- beta * m + (1 - beta) * g
//   p <- p - lr * sign(m)                        (sign(0) = 0, as torch.sign)
// i.e. Lion with beta1 = beta2 = beta. State (m) has the parameter's dtype and device.
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct SignumOptions {
  double lr = 1e-4;
  double beta = 0.9;
  double weight_decay = 0.0;
  void fields(assay::Fields& f) {
    f("lr", lr, "learning rate (the step is lr * sign(m) per coordinate)").min(0);
    f("beta", beta, "decay of the momentum m = beta * m + (1 - beta) * g; 0 = signSGD").range(0, 1);
    f("weight_decay", weight_decay, "decoupled weight decay, p *= 1 - lr * weight_decay before the update").min(0);
  }
};

class Signum : public assay::Optimizer {
 public:
  using Options = SignumOptions;

  Signum(const Options& options, const assay::Context& context) {
    for (auto& group : assay::groups_with_options(context, options)) {
      Group g;
      g.options = group.options;
      g.lr = g.options.lr;
      g.params = group.params;
      g.momentum.resize(g.params.size());
      groups_.push_back(std::move(g));
    }
  }

  void step() override {
    torch::NoGradGuard no_grad;
    for (auto& group : groups_) {
      const Options& o = group.options;
      for (size_t i = 0; i < group.params.size(); ++i) {
        at::Tensor& p = group.params[i];
        const at::Tensor& grad = p.grad();
        if (!grad.defined()) continue;
        if (grad.is_sparse()) throw std::runtime_error("signum: sparse gradients are not supported");
        at::Tensor& m = group.momentum[i];
        if (!m.defined()) m = torch::zeros_like(p, at::MemoryFormat::Preserve);
        if (o.weight_decay != 0) p.mul_(1 - group.lr * o.weight_decay);
        m.mul_(o.beta).add_(grad, 1 - o.beta);
        p.add_(m.sign(), -group.lr);
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
        if (groups_[g].momentum[i].defined()) archive.write(key(g, i) + ".m", groups_[g].momentum[i], true);
      }
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    for (size_t g = 0; g < groups_.size(); ++g) {
      at::Tensor size;
      if (!archive.try_read(key(g) + ".size", size, true) ||
          size.item<int64_t>() != static_cast<int64_t>(groups_[g].params.size())) {
        throw std::runtime_error("signum: the checkpoint's parameter groups do not match the model's");
      }
      for (size_t i = 0; i < groups_[g].params.size(); ++i) {
        const at::Tensor& p = groups_[g].params[i];
        at::Tensor m;
        if (archive.try_read(key(g, i) + ".m", m, true)) {
          if (m.sizes() != p.sizes()) {
            throw std::runtime_error("signum: checkpoint state of " + key(g, i) + " has the wrong shape");
          }
          m = m.to(p.device());
        }
        groups_[g].momentum[i] = m;  // undefined when the parameter had no state yet
      }
    }
  }

 private:
  struct Group {
    Options options;
    double lr = 0;                     // options.lr * the current LR factor
    std::vector<at::Tensor> params;
    std::vector<at::Tensor> momentum;  // undefined until the parameter's first gradient
  };
  static std::string key(size_t g) { return "group" + std::to_string(g); }
  static std::string key(size_t g, size_t i) { return key(g) + ".param" + std::to_string(i); }

  std::vector<Group> groups_;
};

}  // namespace

ASSAY_PLUGIN("signum", "1.0.0") {
  plugin.add<Signum>("signum", "Signum: sign of the gradient's EMA (Lion with beta1 = beta2), decoupled weight decay");
}
