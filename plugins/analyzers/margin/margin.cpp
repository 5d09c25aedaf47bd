// Normalized margin of a homogeneous model (margin-features paper):
//   gamma = min_x [f_y(x) - max_{c != y} f_c(x)] / sum_i ||theta_i||^k,
// k = the model's degree of homogeneity, theta_i = hidden neuron i's parameters, min over a whole split.
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

class Margin : public assay::Analyzer {
 public:
  struct Options {
    std::string split = "train";
    std::string reference = "none";
    void fields(assay::Fields& f) {
      f("split", split, "evaluation set the minimum is taken over");
      f("reference", reference,
        "closed-form max margin to report margin.ratio against: modular_addition = sqrt(2/27) / ((p-1) sqrt(p)) "
        "as stated in the paper summary (not re-derived here)")
          .choices({"none", "modular_addition"});
    }
  };

  Margin(const Options& options, const assay::Context& context)
      : options_(options), task_(*context.task), model_(*context.model), recorder_(*context.recorder) {
    if (model_.homogeneity() <= 0 || model_.neuron_parameters().empty()) {
      throw std::invalid_argument("margin needs a homogeneous model with per-neuron parameters (e.g. quadratic_mlp)");
    }
    if (options.reference == "modular_addition") {
      const double p = static_cast<double>(task_.shape().num_classes);
      reference_ = std::sqrt(2.0 / 27.0) / ((p - 1) * std::sqrt(p));
    }
  }

  void on_eval(int64_t step) override {
    auto batch = task_.eval_batch(options_.split);
    auto logits = model_.forward(batch.inputs).to(torch::kDouble);
    auto correct = logits.gather(1, batch.targets.unsqueeze(1)).squeeze(1);
    auto others = logits.scatter(1, batch.targets.unsqueeze(1), -std::numeric_limits<double>::infinity());
    const double raw = (correct - std::get<0>(others.max(1))).min().item<double>();
    const double norm = assay::neuron_norms(model_, torch::kDouble).pow(model_.homogeneity()).sum().item<double>();
    const double normalized = raw / norm;
    recorder_.metric("margin.raw", step, raw);
    recorder_.metric("margin.normalized", step, normalized);
    if (reference_ > 0) recorder_.metric("margin.ratio", step, normalized / reference_);
  }

 private:
  Options options_;
  assay::Task& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
  double reference_ = 0;
};

}  // namespace

ASSAY_PLUGIN("margin", "1.0.0") {
  plugin.add<Margin>("margin", "normalized margin of a homogeneous model over an evaluation set");
}
