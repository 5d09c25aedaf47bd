// Cross-entropy training (pretraining, SFT, classification), with an optional L_{2,k} norm penalty
// lambda * sum_i ||theta_i||^k over the model's hidden neurons (margin-features paper).
#include <assay/assay.hpp>
#include <assay/step_batches.hpp>

#include <torch/torch.h>

namespace {

class CrossEntropy : public assay::Algorithm {
 public:
  struct Options {
    double label_smoothing = 0.0;
    double norm_penalty = 0.0;
    int64_t norm_power = 3;
    void fields(assay::Fields& f) {
      f("label_smoothing", label_smoothing, "label smoothing of the targets").range(0, 1);
      f("norm_penalty", norm_penalty, "lambda of the L_{2,k} penalty lambda * sum_i ||theta_i||^k; 0 = off").min(0);
      f("norm_power", norm_power, "k of the L_{2,k} penalty (3 for the degree-3 quadratic model)").min(1);
    }
  };

  CrossEntropy(const Options& options, const assay::Context& context)
      : options_(options), task_(*context.task), model_(*context.model), recorder_(*context.recorder), batches_(*context.task) {
    if (options.norm_penalty > 0 && model_.neuron_parameters().empty()) {
      throw std::invalid_argument("ce: norm_penalty needs a model with per-neuron parameters (e.g. quadratic_mlp)");
    }
  }

  assay::StepOutput loss(int64_t step, int micro, int micro_count) override {
    const auto [batch, weight] = batches_.micro_batch(step, micro, micro_count);
    auto ce = cross_entropy(model_.forward(batch.inputs), batch.targets);
    assay::StepOutput out{ce, {}, weight};
    if (options_.norm_penalty > 0) {
      auto penalty = options_.norm_penalty * assay::neuron_norms(model_).pow(static_cast<double>(options_.norm_power)).sum();
      out.loss = ce + penalty;
      out.tensor_metrics = {{"ce", ce}, {"norm_penalty", penalty}};
    }
    return out;
  }

  void prepare(int64_t step) override { batches_.prepare(step); }
  bool capturable() const override { return true; }

  void evaluate(int64_t step) override {
    for (const auto& split : task_.eval_splits()) {
      auto batch = task_.eval_batch(split);
      recorder_.metric("eval." + split + ".loss", step, cross_entropy(model_.forward(batch.inputs), batch.targets).item<double>());
    }
  }

 private:
  at::Tensor cross_entropy(const at::Tensor& logits, const at::Tensor& targets) const {
    auto options = torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).label_smoothing(options_.label_smoothing);
    return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}), options);
  }

  Options options_;
  assay::Task& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
  assay::StepBatches batches_;
};

}  // namespace

ASSAY_PLUGIN("ce", "1.0.0") {
  plugin.add<CrossEntropy>("ce", "cross-entropy on the task's targets, optional L_{2,k} norm penalty");
}
