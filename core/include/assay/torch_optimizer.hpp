#pragma once
/// @file An assay::Optimizer around any torch::optim optimizer: per-group base learning rates (the
/// model's named groups), the host's LR schedule, checkpoint save/load.
#include <assay/components.hpp>

#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

namespace assay {

/// One torch param group per model group, each with its own options (the recipe's per-group
/// overrides, see Context::group_values); `convert` turns the plugin's Options into torch's.
template <class TorchOptimizer, class TorchOptions>
class TorchOptimizerAdapter : public Optimizer {
 public:
  template <class Options>
  TorchOptimizerAdapter(const Options& options, const Context& context, TorchOptions (*convert)(const Options&)) {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    for (auto& group : groups_with_options(context, options)) {
      TorchOptions group_options = convert(group.options);
      base_lr_.push_back(group_options.lr());
      groups.emplace_back(group.params, std::make_unique<TorchOptions>(group_options));
    }
    optimizer_ = std::make_unique<TorchOptimizer>(std::move(groups), convert(options));
  }

  void step() override { optimizer_->step(); }

  void set_lr_factor(double factor) override {
    auto& groups = optimizer_->param_groups();
    for (size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(base_lr_[i] * factor);
  }

  double lr() const override { return optimizer_->param_groups().front().options().get_lr(); }

  void save(torch::serialize::OutputArchive& archive) const override { optimizer_->save(archive); }
  void load(torch::serialize::InputArchive& archive) override { optimizer_->load(archive); }

 protected:
  std::unique_ptr<TorchOptimizer> optimizer_;
  std::vector<double> base_lr_;
};

}  // namespace assay
