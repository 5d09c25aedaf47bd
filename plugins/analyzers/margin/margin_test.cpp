#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>

#include "test_support.hpp"

namespace assay {
namespace {

TEST(Margin, MatchesAFloat64ReferenceOfTheDefinition) {
  Context context;
  auto task = testing::plugins().create<Task>("modular_addition",
                                              testing::values_of(Kind::task, "modular_addition", {{"p", int64_t{5}}}), context);
  auto model = testing::small_model(5, 7, 3);
  testing::MemoryRecorder recorder;
  context.task = task.get();
  context.model = model.get();
  context.recorder = &recorder;
  auto margin = testing::plugins().create<Analyzer>(
      "margin", testing::values_of(Kind::analyzer, "margin", {{"reference", std::string("modular_addition")}}), context);
  margin->on_eval(3);

  // gamma = min_(a,b) [f_y - max_{c != y} f_c] / sum_i ||theta_i||^3, by explicit loops in float64.
  auto p = model->named_parameters();
  auto u = p["u"].to(torch::kDouble), v = p["v"].to(torch::kDouble), w = p["w"].to(torch::kDouble);
  double worst = INFINITY;
  for (int64_t a = 0; a < 5; ++a) {
    for (int64_t b = 0; b < 5; ++b) {
      std::vector<double> f(5, 0.0);
      for (int64_t c = 0; c < 5; ++c) {
        for (int64_t i = 0; i < 7; ++i) {
          const double pre = u[i][a].item<double>() + v[i][b].item<double>();
          f[c] += pre * pre * w[i][c].item<double>();
        }
      }
      const int64_t y = (a + b) % 5;
      double best_other = -INFINITY;
      for (int64_t c = 0; c < 5; ++c) {
        if (c != y) best_other = std::max(best_other, f[c]);
      }
      worst = std::min(worst, f[y] - best_other);
    }
  }
  double norm = 0;
  for (int64_t i = 0; i < 7; ++i) {
    norm += std::pow((u[i].square().sum() + v[i].square().sum() + w[i].square().sum()).item<double>(), 1.5);
  }
  EXPECT_NEAR(recorder.last("margin.raw"), worst, 1e-5);
  EXPECT_NEAR(recorder.last("margin.normalized"), worst / norm, 1e-7);
  const double reference = std::sqrt(2.0 / 27.0) / (4.0 * std::sqrt(5.0));
  EXPECT_NEAR(recorder.last("margin.ratio"), worst / norm / reference, 1e-5);
}

TEST(Margin, RefusesANonHomogeneousModel) {
  Context context;
  context.task_shape = {5, 5, 2};
  auto task = testing::plugins().create<Task>("modular_addition",
                                              testing::values_of(Kind::task, "modular_addition", {{"p", int64_t{5}}}), context);
  auto model = testing::plugins().create<Model>("mlp", testing::values_of(Kind::model, "mlp"), context);
  testing::MemoryRecorder recorder;
  context.task = task.get();
  context.model = model.get();
  context.recorder = &recorder;
  EXPECT_THROW(testing::plugins().create<Analyzer>("margin", testing::values_of(Kind::analyzer, "margin"), context),
               std::invalid_argument);
}

}  // namespace
}  // namespace assay
