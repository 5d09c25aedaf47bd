// assay::Norm's autocast_output: under autocast the norm returns autocast's dtype with the values and gradients of
// the float32 norm followed by the cast (on CUDA through assay::fused_norm; equal up to the order of float32 sums,
// so within one 16-bit ulp); without autocast, or without the option, float32.
#include "mixed_precision.hpp"

#include <assay/layers.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

namespace assay {
namespace {

std::vector<torch::Device> devices() {
  std::vector<torch::Device> out{torch::kCPU};
  if (torch::cuda::is_available()) out.emplace_back(torch::kCUDA);
  return out;
}

TEST(Norm, AutocastOutputIsTheCastOfTheFloat32Norm) {
  for (const auto device : devices()) {
    for (const bool rms : {false, true}) {
      for (const auto dtype : {c10::kBFloat16, c10::kHalf}) {
        SCOPED_TRACE(device.str() + (rms ? " rmsnorm " : " layernorm ") + c10::toString(dtype));
        torch::manual_seed(0);
        Norm norm(NormOptions{.dim = 48, .rms = rms, .autocast_output = true});
        norm->to(device);
        {
          torch::NoGradGuard no_grad;
          norm->weight.uniform_(0.5, 1.5);
          if (norm->bias.defined()) norm->bias.normal_();
        }
        auto x = (torch::randn({4, 5, 48}) * 3 + 1).to(device).requires_grad_(true);
        auto dy = torch::randn({4, 5, 48}).to(device).to(dtype);

        auto reference = (rms ? at::rms_norm(x, {48}, norm->weight, 1e-5)
                              : at::layer_norm(x, {48}, norm->weight, norm->bias, 1e-5)).to(dtype);
        reference.backward(dy);
        std::vector<at::Tensor> expected{x.grad().clone(), norm->weight.grad().clone()};
        if (!rms) expected.push_back(norm->bias.grad().clone());
        for (auto& p : {x, norm->weight}) p.mutable_grad() = at::Tensor();
        if (!rms) norm->bias.mutable_grad() = at::Tensor();

        at::Tensor y;
        {
          AutocastScope scope(device.type(), dtype);
          y = norm->forward(x);
        }
        ASSERT_EQ(y.scalar_type(), dtype);
        y.backward(dy);
        std::vector<at::Tensor> got{x.grad(), norm->weight.grad()};
        if (!rms) got.push_back(norm->bias.grad());
        if (device.is_cpu()) {
          EXPECT_TRUE(torch::equal(y, reference)) << "the CPU path is ATen's norm and the cast";
          for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], expected[i])) << "gradient " << i;
        } else {
          const auto a = y.to(torch::kFloat), b = reference.to(torch::kFloat);
          const double ulp = dtype == c10::kBFloat16 ? 1.0 / 128 : 1.0 / 1024;  // of |value|, at most one ulp apart
          EXPECT_TRUE(((a - b).abs() <= b.abs() * ulp + 1e-6).all().item<bool>()) << (a - b).abs().max();
          for (size_t i = 0; i < got.size(); ++i) {
            const double scale = expected[i].abs().max().item<double>();
            EXPECT_LT((got[i] - expected[i]).abs().max().item<double>(), 1e-4 * scale) << "gradient " << i;
          }
        }
        for (auto& p : {x, norm->weight}) p.mutable_grad() = at::Tensor();

        EXPECT_EQ(norm->forward(x).scalar_type(), c10::kFloat) << "outside autocast";
        norm->options.autocast_output = false;
        AutocastScope scope(device.type(), dtype);
        EXPECT_EQ(norm->forward(x).scalar_type(), c10::kFloat) << "autocast_output = false";
      }
    }
  }
}

}  // namespace
}  // namespace assay
