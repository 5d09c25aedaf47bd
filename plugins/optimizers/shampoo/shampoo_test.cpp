#include <gtest/gtest.h>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include "test_support.hpp"

namespace assay {
namespace {

// The float64 numpy reference (shampoo_reference.py), as a Python expression over `groups` for the replay
// scripts below and for testing::max_difference_from_python.
std::string reference(const std::string& arguments) {
  return "__import__('sys').path.insert(0, '" ASSAY_SOURCE_DIR "/plugins/optimizers/shampoo') or "
         "__import__('shampoo_reference').Shampoo(" + arguments + ")";
}

// Common options for the reference comparisons: inverse roots recomputed four times within 13 steps
// (frequency 3), betas and shampoo_beta all different so that a swapped decay would show.
const Values kBase = {{"lr", 0.01}, {"beta1", 0.9}, {"beta2", 0.95}, {"shampoo_beta", 0.9}, {"weight_decay", 0.1},
                      {"precondition_frequency", int64_t{3}}};
const std::string kBaseArgs = "lr=0.01, betas=(0.9, 0.95), shampoo_beta=0.9, weight_decay=0.1, precondition_frequency=3";

Values with(Values values, const Values& more) {
  for (const auto& [k, v] : more) values[k] = v;
  return values;
}

// Tolerances. Inverse roots are first computed at step 3 from factors that hold three gradients: every
// factor in these runs is then full rank (even a [6, 2] gradient's 6x6 L), so H_k = (GG_k / c +
// matrix_eps I)^(-1/root) is a smooth function of GG_k and float32 and the float64 reference differ by
// rounding only. Measured: 6e-8 .. 3.4e-7 in every float32 comparison, the same as with precision =
// "float64" (2.8e-7): dominated by rounding the float32 parameters (ulp/2 ~ 3e-8..6e-8 per step over 13
// steps), not by float32 eigh. 2e-6 leaves a x6 margin for other BLAS/LAPACK builds. Mistakes, measured by
// mutating the reference on the kMixed run / on the no-grafting run: weight decay after instead of before
// the update 3.5e-5 / 1.2e-5, shampoo_beta ignored 7.8e-4 / 2.2e-5, exponent -1/(2 root) 1.1e-2 / 7.2e-3,
// roots also at t = 1 4.6e-2 / 1.4e-2, G preconditioned instead of the momentum 2.7e-2 / 5.8e-3, factors
// not bias-corrected (invisible under grafting) - / 4.1e-3, eps inside the sqrt 1.4e-4, momentum instead
// of Adam before the first roots 2.1e-2, grafting to ||G|| 5.7e-2: all at least x6 above the tolerance.
constexpr double kFloat32Tolerance = 2e-6;
constexpr double kFloat64Tolerance = 1e-6;

TEST(Shampoo, FollowsFloat64ReferenceOnQuadraticMlp) {
  const double diff = testing::max_difference_from_python("shampoo", kBase, reference("groups, " + kBaseArgs), 13);
  std::cout << "[ compare  ] max |C++ - reference| = " << diff << "\n";
  EXPECT_LT(diff, kFloat32Tolerance);
}

const testing::Layout kMixed = {{"a", {6, 6}}, {"a", {5}}, {"a", {3, 4, 5}}, {"b", {7, 8}}, {"b", {2, 3, 4, 5}}};

TEST(Shampoo, FollowsFloat64ReferenceOnMatricesVectorsAndHigherOrderTensors) {
  // Every 5th gradient of each parameter is withheld (skipped parameters keep their state and step count).
  const auto result = testing::compare_with_python("shampoo", kBase, reference("groups, " + kBaseArgs), kMixed, 14, 5);
  EXPECT_GT(result.movement, 0.05);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Shampoo, Float64PrecisionFollowsReferenceTightly) {
  const auto result = testing::compare_with_python("shampoo", with(kBase, {{"precision", std::string("float64")}}),
                              reference("groups, " + kBaseArgs), kMixed, 14, 5);
  EXPECT_LT(result.difference, kFloat64Tolerance);
}

TEST(Shampoo, WithoutGraftingRootFourAndPassThroughDimsFollowsReference) {
  // grafting none: the raw P (and M^ before the first roots; 1-D tensors still take Adam); root 4;
  // max_precond_dim 4: [4, 40] keeps only L, [3, 4, 5] its first two dims, [6, 6] none (Adam).
  // Without grafting the factors' bias correction (c_s) shows in the update's size; matrix_eps 1e-4 too.
  const testing::Layout layout = {{"a", {4, 40}}, {"a", {3, 4, 5}}, {"a", {6, 6}}, {"a", {5}}};
  const auto result = testing::compare_with_python(
      "shampoo",
      with(kBase, {{"grafting", std::string("none")}, {"root", int64_t{4}}, {"max_precond_dim", int64_t{4}},
                   {"matrix_eps", 1e-4}, {"lr", 0.005}}),
      reference("groups, lr=0.005, betas=(0.9, 0.95), shampoo_beta=0.9, weight_decay=0.1, precondition_frequency=3, "
                "grafting='none', root=4, max_precond_dim=4, matrix_eps=1e-4"),
      layout, 13);
  EXPECT_GT(result.movement, 0.01);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Shampoo, WithoutBiasCorrectionFollowsReference) {
  const auto result = testing::compare_with_python("shampoo", with(kBase, {{"correct_bias", false}, {"root", int64_t{4}}}),
                              reference("groups, " + kBaseArgs + ", correct_bias=False, root=4"), kMixed, 13);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Shampoo, DefaultsFollowReference) {
  // Frequency 10: Adam for nine steps, then the first inverse roots; shampoo_beta -1 = beta2.
  const auto result = testing::compare_with_python("shampoo", {}, reference("groups"), kMixed, 13);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Shampoo, UnpreconditionedTensorsAreAdamW) {
  // 1-D tensors and a matrix whose dims both exceed max_precond_dim take the Adam update: PyTorch's AdamW
  // (decay p *= 1 - lr wd, then the bias-corrected Adam step). Both sides float32, rounded differently.
  const testing::Layout layout = {{"a", {5}}, {"a", {6, 6}}, {"b", {3}}};
  const auto result = testing::compare_with_python("shampoo", with(kBase, {{"max_precond_dim", int64_t{4}}, {"eps", 1e-6}}),
                              "torch.optim.AdamW(groups, lr=0.01, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1)",
                              layout, 12, 4);
  EXPECT_LT(result.difference, 1e-6);
}

TEST(Shampoo, SkipsParametersWithoutGradientAndScalesLr) {
  testing::Shapes model({{"a", {4, 4}}, {"b", {3}}});
  auto optimizer = testing::make_optimizer("shampoo", {{"lr", 0.02}}, model, {{"b", {{"lr", 0.5}}}});
  optimizer->set_lr_factor(0.25);
  EXPECT_DOUBLE_EQ(optimizer->lr(), 0.005);  // the first group's lr times the factor
  auto params = model.parameters();
  const auto untouched = params[1].detach().clone();
  for (int step = 0; step < 3; ++step) {
    params[0].mutable_grad() = torch::randn_like(params[0]);
    optimizer->step();
  }
  EXPECT_TRUE(torch::equal(params[1], untouched));
}

TEST(Shampoo, SaveLoadContinuesBitIdentically) {
  // Saved before the first inverse roots, and after, with recomputations on both sides.
  EXPECT_TRUE(testing::continues_identically_after_load("shampoo", {{"precondition_frequency", int64_t{3}}}, 1, 6));
  EXPECT_TRUE(testing::continues_identically_after_load("shampoo", {{"precondition_frequency", int64_t{2}}}, 5, 6));
  EXPECT_TRUE(testing::continues_identically_after_load(
      "shampoo", {{"precondition_frequency", int64_t{2}}, {"grafting", std::string("none")}, {"root", int64_t{4}}}, 4, 5));
  EXPECT_TRUE(testing::continues_identically_after_load(
      "shampoo", {{"precondition_frequency", int64_t{3}}, {"precision", std::string("float64")}}, 4, 5));
}

TEST(Shampoo, PrecisionSetsTheStateDtype) {
  testing::Shapes model({{"a", {4, 5}}});
  for (const std::string precision : {"float32", "float64"}) {
    auto optimizer = testing::make_optimizer("shampoo", {{"precision", precision}, {"precondition_frequency", int64_t{1}}}, model);
    auto p = model.parameters()[0];  // a handle (parameters() returns a temporary vector)
    p.mutable_grad() = torch::randn_like(p);
    optimizer->step();
    torch::serialize::OutputArchive archive;
    optimizer->save(archive);
    std::ostringstream buffer;
    archive.save_to(buffer);
    torch::serialize::InputArchive input;
    std::istringstream in(buffer.str());
    input.load_from(in);
    const auto expected = precision == "float64" ? torch::kDouble : torch::kFloat;
    for (const char* name : {"exp_avg", "exp_avg_sq", "gg0", "gg1", "root0", "root1"}) {
      at::Tensor t;
      input.read(std::string("shampoo.group0.param0.") + name, t);
      EXPECT_EQ(t.scalar_type(), expected) << precision << " " << name;
    }
    EXPECT_EQ(p.scalar_type(), torch::kFloat);  // the parameter keeps its dtype
  }
}

TEST(Shampoo, LoadRefusesAnotherLayout) {
  auto model = testing::small_model(7, 6);
  auto small = testing::make_optimizer("shampoo", {{"max_precond_dim", int64_t{5}}}, *model);  // u, v: no factors
  for (auto& p : model->parameters()) p.mutable_grad() = torch::randn_like(p);
  small->step();
  torch::serialize::OutputArchive archive;
  small->save(archive);
  std::ostringstream buffer;
  archive.save_to(buffer);
  auto full = testing::make_optimizer("shampoo", {}, *model);
  torch::serialize::InputArchive input;
  std::istringstream in(buffer.str());
  input.load_from(in);
  EXPECT_THROW(full->load(input), std::runtime_error);
}

TEST(Shampoo, UnknownGroupIsRefused) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  context.group_values["attention"] = testing::values_of(Kind::optimizer, "shampoo");
  EXPECT_THROW(testing::plugins().create<Optimizer>("shampoo", testing::values_of(Kind::optimizer, "shampoo"), context),
               std::invalid_argument);
}

}  // namespace
}  // namespace assay
