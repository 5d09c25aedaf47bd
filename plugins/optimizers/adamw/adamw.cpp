// AdamW (torch::optim::AdamW): Adam with weight decay applied as weight_decay_mode says:
//   decoupled   (default, torch's AdamW):   p <- p (1 - lr wd), then the Adam step
//   independent (the optimizer-comparison paper's "LR-independent" decay): p <- p (1 - wd) per step
//   l2          (torch's Adam weight_decay): the Adam step on g + wd p (the decay enters m and v)
// weight_decay = 0 is Adam in every mode. The modes other than "decoupled" run torch's AdamW with
// weight_decay 0 around the plugin's own decay; per-group overrides may mix modes.
// implementation: "loop" = torch::optim::AdamW (a few kernels per parameter tensor); "fused" = ATen's
// _fused_adamw_ (one multi-tensor kernel per group, what torch.optim.AdamW(fused=True) calls: far fewer
// launches on a GPU); "auto" = fused on CUDA, loop on CPU.
#include <assay/assay.hpp>
#include <assay/torch_optimizer.hpp>

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_fused_adamw.h>
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
  std::string implementation = "auto";
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
    f("implementation", implementation,
      "loop: torch::optim::AdamW; fused: one multi-tensor kernel per group (ATen's _fused_adamw_, as "
      "torch.optim.AdamW(fused=True)); auto: fused on CUDA, loop on CPU")
        .choices({"auto", "loop", "fused"});
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
  AdamW(const Options& options, const assay::Context& context)
      : TorchOptimizerAdapter(options, context, &to_torch),
        fused_(options.implementation == "fused" || (options.implementation == "auto" && context.device.is_cuda())),
        cuda_(context.device.is_cuda()) {
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
      if (fused_) fused_step();
      else optimizer_->step();
    } catch (...) {
      for (auto& [p, grad] : swapped) p.mutable_grad() = grad;
      throw;
    }
    for (auto& [p, grad] : swapped) p.mutable_grad() = grad;
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    optimizer_->save(archive);  // the param groups' options; the fused path's moments follow
    archive.write("fused", torch::tensor(fused_ ? 1 : 0));
    for (size_t k = 0; k < fused_state_.size(); ++k) {
      const auto& st = fused_state_[k];
      if (!st.step.defined()) continue;
      const std::string key = "fused." + std::to_string(k) + ".";
      archive.write(key + "step", st.step, /*is_buffer=*/true);
      archive.write(key + "exp_avg", st.exp_avg, true);
      archive.write(key + "exp_avg_sq", st.exp_avg_sq, true);
      if (st.max_exp_avg_sq.defined()) archive.write(key + "max_exp_avg_sq", st.max_exp_avg_sq, true);
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    optimizer_->load(archive);
    at::Tensor fused;
    const bool saved_fused = archive.try_read("fused", fused) && fused.item<int>() == 1;
    if (saved_fused != fused_) {
      throw std::runtime_error(std::string("adamw: the checkpoint's moments were saved by the ") +
                               (saved_fused ? "fused" : "loop") + " implementation and this run uses the " +
                               (fused_ ? "fused" : "loop") + " one; set implementation to match");
    }
    if (!fused_) return;
    const auto params = parameters();
    fused_state_.assign(params.size(), {});
    for (size_t k = 0; k < params.size(); ++k) {
      auto& st = fused_state_[k];
      const std::string key = "fused." + std::to_string(k) + ".";
      if (!archive.try_read(key + "step", st.step, true)) continue;  // no gradient yet when saved
      archive.read(key + "exp_avg", st.exp_avg, true);
      archive.read(key + "exp_avg_sq", st.exp_avg_sq, true);
      archive.try_read(key + "max_exp_avg_sq", st.max_exp_avg_sq, true);
      for (auto* t : {&st.step, &st.exp_avg, &st.exp_avg_sq, &st.max_exp_avg_sq}) {
        if (t->defined()) *t = t->to(params[k].device());
      }
    }
  }

  // Fused on CUDA: the step count lives on the device and the learning rate too (set_lr_factor writes it
  // outside the step), so that step() can be captured in a CUDA graph.
  bool capturable() const override { return fused_ && cuda_; }

  void set_lr_factor(double factor) override {
    TorchOptimizerAdapter::set_lr_factor(factor);
    auto& groups = optimizer_->param_groups();
    for (size_t g = 0; g < lr_tensors_.size(); ++g) {
      if (lr_tensors_[g].defined()) lr_tensors_[g].fill_(groups[g].options().get_lr());
    }
  }

 private:
  /// Every parameter of every group, in group order (the fused state's index).
  std::vector<at::Tensor> parameters() const {
    std::vector<at::Tensor> out;
    for (const auto& g : optimizer_->param_groups()) out.insert(out.end(), g.params().begin(), g.params().end());
    return out;
  }

  /// torch.optim.AdamW(fused=True)'s step: per group, the parameters with a gradient, their step counts
  /// raised by one, then one _fused_adamw_ call (the bias corrections read the counts on the device).
  void fused_step() {
    torch::NoGradGuard no_grad;
    auto& groups = optimizer_->param_groups();
    if (fused_state_.empty()) fused_state_.resize(parameters().size());
    size_t k = 0;
    if (lr_tensors_.empty()) lr_tensors_.resize(groups.size());
    for (size_t g = 0; g < groups.size(); ++g) {
      auto& group = groups[g];
      const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
      std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
      for (auto& p : group.params()) {
        auto& st = fused_state_[k++];
        if (!p.grad().defined()) continue;
        if (!st.step.defined()) {
          st.step = torch::zeros({}, p.options().dtype(torch::kFloat));
          st.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
          st.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
          if (o.amsgrad()) st.max_exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
        }
        params.push_back(p);
        grads.push_back(p.grad());
        exp_avgs.push_back(st.exp_avg);
        exp_avg_sqs.push_back(st.exp_avg_sq);
        if (o.amsgrad()) max_exp_avg_sqs.push_back(st.max_exp_avg_sq);
        steps.push_back(st.step);
      }
      if (params.empty()) continue;
      at::_foreach_add_(steps, 1);
      const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
      if (cuda_) {  // the kernel reads lr as float32 either way: the device copy changes no bit
        if (!lr_tensors_[g].defined()) lr_tensors_[g] = torch::full({}, o.lr(), params.front().options().dtype(torch::kFloat));
        at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr_tensors_[g], beta1, beta2,
                          o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false);
      } else {
        at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, o.lr(), beta1, beta2,
                          o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false);
      }
    }
  }

  struct FusedState {
    at::Tensor step, exp_avg, exp_avg_sq, max_exp_avg_sq;  // undefined until the parameter's first gradient
  };
  bool fused_, cuda_;
  std::vector<FusedState> fused_state_;  // per parameter, in parameters() order
  std::vector<at::Tensor> lr_tensors_;   // fused on CUDA: per group, the learning rate on the device

  struct Decay {
    enum Kind { independent, l2 } kind;
    double weight_decay;  // 0 when torch applies it (decoupled) or there is none
  };
  std::vector<Decay> decay_;
};

}  // namespace

ASSAY_PLUGIN("adamw", "1.0.0") { plugin.add<AdamW>("adamw", "Adam with decoupled weight decay"); }
