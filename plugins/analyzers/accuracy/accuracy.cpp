// Exact-match accuracy of argmax predictions on the task's evaluation sets.
#include <assay/assay.hpp>

#include <torch/torch.h>

namespace {

class Accuracy : public assay::Analyzer {
 public:
  struct Options {
    std::vector<std::string> splits;
    void fields(assay::Fields& f) { f("splits", splits, "evaluation sets to score; empty = all of the task's"); }
  };

  Accuracy(const Options& options, const assay::Context& context)
      : splits_(options.splits), task_(*context.task), model_(*context.model), recorder_(*context.recorder) {
    if (splits_.empty()) splits_ = task_.eval_splits();
  }

  void on_eval(int64_t step) override {
    for (const auto& split : splits_) {
      auto batch = task_.eval_batch(split);
      auto predicted = model_.forward(batch.inputs).argmax(-1);
      auto scored = batch.targets != -100;
      auto correct = (predicted == batch.targets).logical_and(scored).sum();
      recorder_.metric("eval." + split + ".accuracy", step,
                       correct.item<double>() / std::max<double>(1.0, scored.sum().item<double>()));
    }
  }

 private:
  std::vector<std::string> splits_;
  assay::Task& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
};

}  // namespace

ASSAY_PLUGIN("accuracy", "1.0.0") { plugin.add<Accuracy>("accuracy", "argmax accuracy per evaluation set"); }
