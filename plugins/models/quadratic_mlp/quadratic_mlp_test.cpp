#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

TEST(QuadraticMlp, ForwardMatchesTheFormulaInFloat64) {
  auto model = testing::small_model(5, 3);
  auto params = model->named_parameters();
  auto u = params["u"].to(torch::kDouble), v = params["v"].to(torch::kDouble), w = params["w"].to(torch::kDouble);
  auto inputs = torch::tensor({0, 4, 3, 1, 2, 2}, torch::kLong).reshape({3, 2});
  auto logits = model->forward(inputs).to(torch::kDouble);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{3, 5}));
  for (int64_t n = 0; n < 3; ++n) {
    const int64_t a = inputs[n][0].item<int64_t>(), b = inputs[n][1].item<int64_t>();
    for (int64_t c = 0; c < 5; ++c) {
      double f = 0;  // f_c = sum_i (u_i[a] + v_i[b])^2 w_i[c]
      for (int64_t i = 0; i < 3; ++i) {
        const double pre = u[i][a].item<double>() + v[i][b].item<double>();
        f += pre * pre * w[i][c].item<double>();
      }
      EXPECT_NEAR(logits[n][c].item<double>(), f, 1e-6);
    }
  }
}

TEST(QuadraticMlp, IsHomogeneousOfDegreeThree) {
  auto model = testing::small_model(7, 8);
  ASSERT_EQ(model->homogeneity(), 3);
  auto inputs = torch::randint(7, {16, 2}, torch::kLong);
  auto before = model->forward(inputs).to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.mul_(2.0);
  }
  EXPECT_TRUE(torch::allclose(model->forward(inputs).to(torch::kDouble), before * 8.0, 1e-5, 1e-6));
  EXPECT_EQ(model->neuron_parameters().size(), 3u);
  EXPECT_EQ(model->neuron_parameters()[2].size(0), 8);
}

TEST(QuadraticMlp, DefaultWidthIsFourTimesPMinusOne) {
  Context context;
  context.task_shape = {11, 11, 2};
  auto model = testing::plugins().create<Model>("quadratic_mlp", testing::values_of(Kind::model, "quadratic_mlp"), context);
  EXPECT_EQ(model->named_parameters()["u"].size(0), 40);
}

}  // namespace
}  // namespace assay
