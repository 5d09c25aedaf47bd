// Fourier features of neuron-major weights over the token axis (margin-features paper):
// per neuron, P(z) = |x^(z)|^2 + |x^(p-z)|^2 for z = 1..floor(p/2) (the DC term is excluded), the
// max normalized power max_z P(z) / sum_z P(z) and the dominant frequency argmax_z P(z).
#include <assay/assay.hpp>

#include <torch/torch.h>

namespace {

class FourierFeatures : public assay::Analyzer {
 public:
  struct Options {
    std::vector<std::string> parameters = {"u", "v", "w"};
    double threshold = 0.9;
    void fields(assay::Fields& f) {
      f("parameters", parameters, "model parameters [neurons, tokens] to analyze; coverage uses the first");
      f("threshold", threshold, "a neuron counts as single-frequency when its max normalized power exceeds this").range(0, 1);
    }
  };

  FourierFeatures(const Options& options, const assay::Context& context)
      : options_(options), model_(*context.model), recorder_(*context.recorder) {
    auto named = model_.named_parameters();
    for (const auto& name : options.parameters) {
      const auto* p = named.find(name);
      if (!p || p->dim() != 2) {
        throw std::invalid_argument("fourier_features: the model has no 2-D parameter '" + name + "' [neurons, tokens]");
      }
    }
    for (const auto& name : options.parameters) {
      recorder_.describe(name + ".max_power", "axes", "eval, neuron");
      recorder_.describe(name + ".frequency", "axes", "eval, neuron (dominant frequency 1..p/2)");
    }
  }

  /// Power per frequency 1..floor(p/2) of each row of x [m, p]: [m, floor(p/2)].
  static at::Tensor power(const at::Tensor& x) {
    const int64_t p = x.size(1);
    auto spectrum = torch::fft::rfft(x.to(torch::kDouble), c10::nullopt, 1).abs().square();  // [m, p/2 + 1]
    auto folded = spectrum.slice(1, 1, p / 2 + 1) * 2;  // |x^(z)|^2 + |x^(p-z)|^2 for a real signal
    if (p % 2 == 0) folded.select(1, p / 2 - 1).div_(2);  // z = p/2 is its own mirror image
    return folded;
  }

  void on_eval(int64_t step) override {
    auto named = model_.named_parameters();
    at::Tensor first_frequency, agree;
    for (const auto& name : options_.parameters) {
      auto P = power(named[name].detach().cpu());
      auto total = P.sum(1).clamp_min(1e-300);
      auto [max_power, argmax] = P.max(1);
      auto normalized = max_power / total;
      auto frequency = argmax + 1;
      recorder_.append(name + ".max_power", step, normalized.to(torch::kFloat));
      recorder_.append(name + ".frequency", step, frequency);
      recorder_.metric("fourier." + name + ".mean_max_power", step, normalized.mean().item<double>());
      recorder_.metric("fourier." + name + ".share_single_frequency", step,
                       (normalized > options_.threshold).to(torch::kDouble).mean().item<double>());
      if (!first_frequency.defined()) {
        first_frequency = frequency;
        const int64_t p = named[name].size(1);
        auto used = torch::zeros({p / 2 + 1}, torch::kBool).index_fill_(0, frequency, true);
        recorder_.metric("fourier.coverage", step, used.slice(0, 1).to(torch::kDouble).mean().item<double>());
        agree = torch::ones_like(frequency, torch::kBool);
      } else if (frequency.size(0) == first_frequency.size(0)) {
        agree = agree.logical_and(frequency == first_frequency);
      }
    }
    if (options_.parameters.size() > 1) {
      recorder_.metric("fourier.frequency_agreement", step, agree.to(torch::kDouble).mean().item<double>());
    }
  }

 private:
  Options options_;
  assay::Model& model_;
  assay::Recorder& recorder_;
};

}  // namespace

ASSAY_PLUGIN("fourier_features", "1.0.0") {
  plugin.add<FourierFeatures>("fourier_features", "per-neuron max normalized Fourier power and frequency coverage");
}
