#include <gtest/gtest.h>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <fstream>
#include <iostream>

#include "test_support.hpp"

namespace assay {
namespace {

// Python expression constructing adafactor_reference.Adafactor (the paper variant in float64, from the
// formulas) from this folder, without leaving __pycache__ behind in the source tree.
std::string reference(const std::string& arguments) {
  return "(setattr(sys, 'dont_write_bytecode', True), sys.path.insert(0, '" ASSAY_SOURCE_DIR
         "/plugins/optimizers/adafactor'), __import__('adafactor_reference'))[2].Adafactor(" + arguments + ")";
}

constexpr int kSteps = 16;

// Paper variant vs the float64 reference. The plugin keeps p, m, r, c (v) in float32. The update does not
// depend on p (except through the decay factor), so rounding errors are not amplified: each step adds
// the rounding of p (plugin: decay factor, decayed p, p + update; reference: one rounding), ~2 ulp(p),
// plus a relative ~1e-6 (a dozen float32 operations) of the update, whose size is lr / bc1 * m / sqrt(V)
// ~ lr * O(1) <= 0.05 * O(1) here, i.e. ~1e-8. |p| < 1 (ulp <= 6e-8): 16 steps stay below ~2e-6 (the
// tolerance of the adamw test); observed ~6e-8. Formula errors (a missing bias correction, mean(r) over
// the wrong axis) give >= 5e-3.
constexpr double kPaperTolerance = 2e-6;

// Torch variant vs torch.optim.Adafactor in float32: the plugin performs the same ATen operations in the
// same order with the same double-precision scalars, so with the LibTorch of the same torch wheel (as
// here) it matches to the last bit (observed difference: 0). The tolerance, 1 ulp(p) per step for 16
// steps at |p| < 1 (ulp <= 6e-8), leaves room for a separately built LibTorch whose reductions (norms,
// means) round differently, and for the last bit of the learning rate (Python computes lr / f, the
// test helper lr * (1 / f)), which reaches alpha through rho_t = min(lr, 1/sqrt(t)).
constexpr double kTorchTolerance = 1e-6;

TEST(Adafactor, PaperFollowsFloat64Reference) {
  const double diff = testing::max_difference_from_python(
      "adafactor", {{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.9}, {"eps", 1e-8}, {"weight_decay", 0.1}},
      reference("groups, lr=0.01, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.1"), kSteps);
  std::cout << "max |plugin - reference| = " << diff << "\n";
  EXPECT_LT(diff, kPaperTolerance);
}

TEST(Adafactor, PaperDefaults) {
  // Only lr is set: the defaults are variant "paper", betas (0.9, 0.95), eps 1e-15, no weight decay.
  const double diff = testing::max_difference_from_python(
      "adafactor", {{"lr", 0.01}}, reference("groups, lr=0.01, betas=(0.9, 0.95), eps=1e-15, weight_decay=0.0"),
      kSteps);
  std::cout << "max |plugin - reference| = " << diff << "\n";
  EXPECT_LT(diff, kPaperTolerance);
}

TEST(Adafactor, PaperPerGroupOptionsFollowReferenceParamGroups) {
  const double diff = testing::max_difference_from_python(
      "adafactor", {{"lr", 0.01}, {"weight_decay", 0.1}},
      reference("[groups[0], dict(groups[1], lr=0.05, betas=(0.5, 0.95), weight_decay=0.0)], lr=0.01, "
                "weight_decay=0.1"),
      kSteps, {{"head", {{"lr", 0.05}, {"beta1", 0.5}, {"weight_decay", 0.0}}}});
  std::cout << "max |plugin - reference| = " << diff << "\n";
  EXPECT_LT(diff, kPaperTolerance);
}

TEST(Adafactor, TorchFollowsTorchAdafactor) {
  const double diff = testing::max_difference_from_python(
      "adafactor", {{"variant", std::string("torch")}, {"lr", 0.01}},
      "torch.optim.Adafactor(groups, lr=0.01)", kSteps);
  std::cout << "max |plugin - torch| = " << diff << "\n";
  EXPECT_LT(diff, kTorchTolerance);
}

TEST(Adafactor, TorchWithEveryOptionFollowsTorchAdafactor) {
  const double diff = testing::max_difference_from_python(
      "adafactor",
      {{"variant", std::string("torch")}, {"lr", 0.03}, {"beta2_decay", -0.6}, {"eps1", 1e-4}, {"eps2", 0.2},
       {"d", 1.1}, {"weight_decay", 0.1}, {"maximize", true}},
      "torch.optim.Adafactor(groups, lr=0.03, beta2_decay=-0.6, eps=(1e-4, 0.2), d=1.1, weight_decay=0.1, "
      "maximize=True)",
      kSteps);
  std::cout << "max |plugin - torch| = " << diff << "\n";
  EXPECT_LT(diff, kTorchTolerance);
}

TEST(Adafactor, TorchPerGroupOptionsFollowTorchParamGroups) {
  const double diff = testing::max_difference_from_python(
      "adafactor", {{"variant", std::string("torch")}, {"lr", 0.01}, {"weight_decay", 0.1}},
      "torch.optim.Adafactor([groups[0], dict(groups[1], lr=0.05, weight_decay=0.0)], lr=0.01, weight_decay=0.1)",
      kSteps, {{"head", {{"lr", 0.05}, {"weight_decay", 0.0}}}});
  std::cout << "max |plugin - torch| = " << diff << "\n";
  EXPECT_LT(diff, kTorchTolerance);
}

// A model whose parameters have every rank the optimizer distinguishes: 0-D and 1-D (unfactored),
// [R, 1], [R, C] and [B, R, C] (factored over the last two dims), in two groups.
class ShapesModel : public Model {
 public:
  ShapesModel() {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(99);
    auto init = [&](const char* name, std::vector<int64_t> shape) {
      return register_parameter(name, torch::randn(shape, generator) * 0.3);
    };
    low_ = {init("scalar", {}), init("vector", {5})};
    high_ = {init("column", {6, 1}), init("matrix", {4, 3}), init("cube", {2, 3, 4})};
  }
  at::Tensor forward(const at::Tensor& inputs) override { return inputs; }
  std::vector<ParamGroup> param_groups() override { return {{"low", low_}, {"high", high_}}; }

 private:
  std::vector<at::Tensor> low_, high_;
};

// Like testing::max_difference_from_python, on ShapesModel, where the vector (parameter 1) has no
// gradient in the first 3 steps (so its step count lags the others'). The LR factor is 1 / (1 + step / 4),
// applied as lr * factor on both sides.
double max_difference_on_shapes(const Values& overrides, const std::string& python_optimizer, int steps) {
  auto model = std::make_shared<ShapesModel>();
  Context context;
  context.model = model.get();
  auto optimizer = testing::plugins().create<Optimizer>(
      "adafactor", testing::values_of(Kind::optimizer, "adafactor", overrides), context);
  std::vector<at::Tensor> params;
  std::string sizes;
  for (auto& group : model->param_groups()) {
    sizes += std::to_string(group.params.size()) + ",";
    for (auto& p : group.params) params.push_back(p);
  }
  c10::List<at::Tensor> saved;
  for (auto& p : params) saved.push_back(p.detach().clone());
  for (int step = 0; step < steps; ++step) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(5678 + step);
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor grad = torch::randn(params[i].sizes(), generator);
      if (i == 1 && step < 3) grad = at::Tensor();
      params[i].mutable_grad() = grad;
      saved.push_back(grad.defined() ? grad.clone() : torch::empty({0}));  // empty = no grad
    }
    optimizer->set_lr_factor(1.0 / (1.0 + 0.25 * step));
    optimizer->step();
  }
  for (auto& p : params) saved.push_back(p.detach().clone());
  auto dir = testing::temp_dir("adafactor-shapes");
  const std::string data = (dir / "trajectory.pt").string();
  auto bytes = torch::pickle_save(c10::IValue(saved));
  std::ofstream(data, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const std::string script = testing::write_file(dir / "reference.py", R"(import sys, torch
data, sizes, steps = torch.load(sys.argv[1], weights_only=False), [int(s) for s in sys.argv[2].split(",") if s], int(sys.argv[3])
n = sum(sizes)
params = [t.clone().requires_grad_(True) for t in data[:n]]
groups, at = [], 0
for s in sizes:
    groups.append({"params": params[at:at + s]})
    at += s
optimizer = )" + python_optimizer + R"(
base = [g["lr"] for g in optimizer.param_groups]
for step in range(steps):
    for p, g in zip(params, data[n * (1 + step): n * (2 + step)]):
        p.grad = None if g.numel() == 0 else g.clone()
    for g, lr in zip(optimizer.param_groups, base):
        g["lr"] = lr * (1.0 / (1.0 + 0.25 * step))
    optimizer.step()
print(max(float((p.detach() - f).abs().max()) for p, f in zip(params, data[n * (1 + steps):])))
)");
  std::string out;
  if (testing::shell("python3 " + script + " " + data + " " + sizes + " " + std::to_string(steps), &out) != 0) {
    throw std::runtime_error("python reference failed: " + out);
  }
  return std::stod(out);
}

TEST(Adafactor, PaperOnEveryRankFollowsFloat64Reference) {
  const double diff = max_difference_on_shapes({{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.9}, {"eps", 1e-8}},
                                               reference("groups, lr=0.01, betas=(0.8, 0.9), eps=1e-8"), kSteps);
  std::cout << "max |plugin - reference| = " << diff << "\n";
  EXPECT_LT(diff, kPaperTolerance);
}

TEST(Adafactor, TorchOnEveryRankFollowsTorchAdafactor) {
  const double diff = max_difference_on_shapes({{"variant", std::string("torch")}, {"lr", 0.01}, {"weight_decay", 0.1}},
                                               "torch.optim.Adafactor(groups, lr=0.01, weight_decay=0.1)", kSteps);
  std::cout << "max |plugin - torch| = " << diff << "\n";
  EXPECT_LT(diff, kTorchTolerance);
}

TEST(Adafactor, SaveLoadContinuesBitIdentically) {
  EXPECT_TRUE(testing::continues_identically_after_load("adafactor", {{"lr", 0.01}, {"weight_decay", 0.1}}, 5, 7));
  EXPECT_TRUE(testing::continues_identically_after_load(
      "adafactor", {{"variant", std::string("torch")}, {"lr", 0.01}, {"weight_decay", 0.1}}, 5, 7));
}

TEST(Adafactor, ZeroGradientsMoveNothing) {
  // Paper variant: m = 0 and V = 0 (mean(r) = 0 is not divided by), so the update is 0 / eps = 0.
  // Torch variant: the update is 0 * rsqrt(eps1^2) = 0. Parameters without a gradient are skipped.
  for (const std::string variant : {"paper", "torch"}) {
    auto model = testing::small_model(5, 4);
    Context context;
    context.model = model.get();
    auto optimizer = testing::plugins().create<Optimizer>(
        "adafactor", testing::values_of(Kind::optimizer, "adafactor", {{"variant", variant}, {"lr", 0.1}}), context);
    auto params = model->parameters();
    std::vector<at::Tensor> before;
    for (auto& p : params) before.push_back(p.detach().clone());
    params[0].mutable_grad() = torch::zeros_like(params[0]);  // the others have no grad
    optimizer->step();
    optimizer->step();
    for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], before[i])) << variant << " " << i;
  }
}

TEST(Adafactor, OptionsOfTheOtherVariantAreRefused) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  auto create = [&](const Values& overrides) {
    testing::plugins().create<Optimizer>("adafactor", testing::values_of(Kind::optimizer, "adafactor", overrides),
                                         context);
  };
  EXPECT_THROW(create({{"d", 2.0}}), std::invalid_argument);
  EXPECT_THROW(create({{"maximize", true}}), std::invalid_argument);
  EXPECT_THROW(create({{"variant", std::string("torch")}, {"beta1", 0.5}}), std::invalid_argument);
  EXPECT_THROW(create({{"beta2", 1.0}}), std::invalid_argument);
  EXPECT_NO_THROW(create({{"variant", std::string("torch")}, {"d", 2.0}, {"eps1", 1e-30}}));
}

TEST(Adafactor, LrIsTheFirstGroupsScaledLr) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  context.group_values["head"] = testing::values_of(Kind::optimizer, "adafactor", {{"lr", 0.5}});
  auto optimizer = testing::plugins().create<Optimizer>(
      "adafactor", testing::values_of(Kind::optimizer, "adafactor", {{"lr", 0.02}}), context);
  EXPECT_DOUBLE_EQ(optimizer->lr(), 0.02);
  optimizer->set_lr_factor(0.25);
  EXPECT_DOUBLE_EQ(optimizer->lr(), 0.005);
}

TEST(Adafactor, UnknownGroupIsRefused) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  context.group_values["attention"] = testing::values_of(Kind::optimizer, "adafactor");
  EXPECT_THROW(
      testing::plugins().create<Optimizer>("adafactor", testing::values_of(Kind::optimizer, "adafactor"), context),
      std::invalid_argument);
}

}  // namespace
}  // namespace assay
