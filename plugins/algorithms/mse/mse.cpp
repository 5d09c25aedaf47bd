// Mean squared error regression on real-valued targets (teacher_student): loss = mean over every
// element of (model.forward(inputs) - targets)^2, computed in float32 whatever the model's dtype.
// Evaluation records eval.<split>.loss (the same mean) on each of the task's eval splits.
#include <assay/assay.hpp>
#include <assay/step_batches.hpp>

#include <torch/torch.h>

namespace {

class MeanSquaredError : public assay::Algorithm {
 public:
  struct Options {
    void fields(assay::Fields&) {}
  };

  MeanSquaredError(const Options&, const assay::Context& context)
      : task_(*context.task), model_(*context.model), recorder_(*context.recorder), batches_(*context.task) {}

  assay::StepOutput loss(int64_t step, int micro, int micro_count) override {
    const auto [batch, weight] = batches_.micro_batch(step, micro, micro_count);
    return {mse(model_.forward(batch.inputs), batch.targets), {}, weight};
  }

  void prepare(int64_t step) override { batches_.prepare(step); }
  bool capturable() const override { return true; }

  void evaluate(int64_t step) override {
    for (const auto& split : task_.eval_splits()) {
      auto batch = task_.eval_batch(split);
      recorder_.metric("eval." + split + ".loss", step, mse(model_.forward(batch.inputs), batch.targets).item<double>());
    }
  }

 private:
  static at::Tensor mse(const at::Tensor& predictions, const at::Tensor& targets) {
    TORCH_CHECK(targets.is_floating_point(), "mse: the task's targets must be real-valued (got ", targets.scalar_type(),
                "); use ce for class labels");
    TORCH_CHECK(predictions.sizes() == targets.sizes(), "mse: model output ", predictions.sizes(), " vs targets ",
                targets.sizes());
    return (predictions.to(torch::kFloat) - targets.to(torch::kFloat)).square().mean();
  }

  assay::Task& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
  assay::StepBatches batches_;
};

}  // namespace

ASSAY_PLUGIN("mse", "1.0.0") {
  plugin.add<MeanSquaredError>("mse", "mean squared error of the model's output against real-valued targets");
}
