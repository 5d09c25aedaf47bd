// Example third-party analyzer: the L2 norm of each of the model's parameter groups at every eval.
#include <assay/assay.hpp>

#include <torch/torch.h>

namespace {

class ParameterNorms : public assay::Analyzer {
 public:
  struct Options {
    std::string prefix = "norm";
    void fields(assay::Fields& f) { f("prefix", prefix, "metric names are <prefix>.<group>"); }
  };

  ParameterNorms(const Options& options, const assay::Context& context)
      : prefix_(options.prefix), model_(*context.model), recorder_(*context.recorder) {}

  void on_eval(int64_t step) override {
    for (const auto& group : model_.param_groups()) {
      double squared = 0;
      for (const auto& p : group.params) squared += p.detach().to(torch::kDouble).square().sum().item<double>();
      recorder_.metric(prefix_ + "." + group.name, step, std::sqrt(squared));
    }
  }

 private:
  std::string prefix_;
  assay::Model& model_;
  assay::Recorder& recorder_;
};

}  // namespace

ASSAY_PLUGIN("parameter_norms", "0.1.0") {
  plugin.add<ParameterNorms>("parameter_norms", "L2 norm of each parameter group at every eval");
}
