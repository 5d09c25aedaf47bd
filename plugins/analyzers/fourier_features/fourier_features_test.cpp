#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>

#include "test_support.hpp"

namespace assay {
namespace {

constexpr int64_t kP = 11;

/// Runs the analyzer on a quadratic_mlp whose u, v, w rows are set by `fill(neuron, token)`.
testing::MemoryRecorder analyze(const std::function<double(int64_t, int64_t)>& fill, int64_t width) {
  auto model = testing::small_model(kP, width);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) {
      for (int64_t i = 0; i < width; ++i) {
        for (int64_t t = 0; t < kP; ++t) p[i][t] = fill(i, t);
      }
    }
  }
  testing::MemoryRecorder recorder;
  Context context;
  context.model = model.get();
  context.recorder = &recorder;
  auto analyzer = testing::plugins().create<Analyzer>("fourier_features", testing::values_of(Kind::analyzer, "fourier_features"), context);
  analyzer->on_eval(5);
  return recorder;
}

TEST(FourierFeatures, PlantedSingleFrequencyHasPowerOneAtThatFrequency) {
  // Neuron i: cos(2 pi k_i t / p + phase) with k_i = 1 + i % 5 covers every frequency 1..5.
  auto recorder = analyze([](int64_t i, int64_t t) { return 0.3 * std::cos(2 * M_PI * (1 + i % 5) * t / kP + 0.7 * i); }, 10);
  auto power = recorder.rows["u.max_power"][0].second;
  auto frequency = recorder.rows["u.frequency"][0].second;
  EXPECT_TRUE(torch::allclose(power, torch::ones({10}), 1e-5, 1e-5)) << power;
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(frequency[i].item<int64_t>(), 1 + i % 5);
  EXPECT_DOUBLE_EQ(recorder.last("fourier.coverage"), 1.0);
  EXPECT_DOUBLE_EQ(recorder.last("fourier.frequency_agreement"), 1.0);
  EXPECT_DOUBLE_EQ(recorder.last("fourier.u.share_single_frequency"), 1.0);
  EXPECT_EQ(recorder.rows["u.max_power"][0].first, 5);
}

TEST(FourierFeatures, TwoFrequencyMixtureHasThePowerShareOfTheLargerOne) {
  // a cos(2 pi 2 t / p) + b sin(2 pi 4 t / p) + constant: DC is ignored, shares are a^2 : b^2.
  const double a = 2.0, b = 1.0;
  auto recorder = analyze([&](int64_t, int64_t t) { return 5 + a * std::cos(2 * M_PI * 2 * t / kP) + b * std::sin(2 * M_PI * 4 * t / kP); }, 3);
  auto power = recorder.rows["u.max_power"][0].second;
  EXPECT_NEAR(power[0].item<double>(), a * a / (a * a + b * b), 1e-5);
  EXPECT_EQ(recorder.rows["u.frequency"][0].second[0].item<int64_t>(), 2);
  EXPECT_NEAR(recorder.last("fourier.coverage"), 1.0 / 5.0, 1e-12);  // only frequency 2 dominates
  EXPECT_DOUBLE_EQ(recorder.last("fourier.u.share_single_frequency"), 0.0);  // 0.8 < 0.9
}

TEST(FourierFeatures, RefusesAModelWithoutTheNamedParameters) {
  Context context;
  context.task_shape = {5, 5, 2};
  auto model = testing::plugins().create<Model>("mlp", testing::values_of(Kind::model, "mlp"), context);
  testing::MemoryRecorder recorder;
  context.model = model.get();
  context.recorder = &recorder;
  EXPECT_THROW(testing::plugins().create<Analyzer>("fourier_features", testing::values_of(Kind::analyzer, "fourier_features"), context),
               std::invalid_argument);
}

}  // namespace
}  // namespace assay
