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

// A "model" that is only parameters of chosen shapes, in named groups (for shapes quadratic_mlp lacks:
// 1-D, 3-D and 4-D tensors, square matrices).
using Layout = std::vector<std::pair<std::string, std::vector<int64_t>>>;  // (group, shape) per parameter

class Shapes : public Model {
 public:
  explicit Shapes(const Layout& layout) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(42);
    for (size_t i = 0; i < layout.size(); ++i) {
      const auto& [group, shape] = layout[i];
      std::string name = "p";
      name += std::to_string(i);
      auto p = register_parameter(name, torch::randn(shape, generator) * 0.5);
      if (groups_.empty() || groups_.back().name != group) groups_.push_back({group, {}});
      groups_.back().params.push_back(p);
    }
  }
  at::Tensor forward(const at::Tensor&) override { throw std::logic_error("Shapes has no forward"); }
  std::vector<ParamGroup> param_groups() override { return groups_; }

 private:
  std::vector<ParamGroup> groups_;
};

std::shared_ptr<Optimizer> make(const std::string& name, const Values& overrides, Model& model,
                                const std::map<std::string, Values>& group_overrides = {}) {
  Context context;
  context.model = &model;
  const Values values = testing::values_of(Kind::optimizer, name, overrides);
  for (const auto& [group, set] : group_overrides) {
    Values merged = values;
    for (const auto& [key, value] : set) merged[key] = value;
    context.group_values[group] = merged;
  }
  return testing::plugins().create<Optimizer>(name, values, context);
}

double factor_of(int step) { return 1.0 / (1.0 + 0.25 * step); }

// Parameter i has no gradient at step s when skip > 0 and (s + i) % skip == skip - 1.
bool skipped(int step, size_t index, int skip) { return skip > 0 && (step + static_cast<int>(index)) % skip == skip - 1; }

struct Comparison {
  double difference = 0;  // max |C++ - float64 reference| over the final parameters
  double movement = 0;    // max |final - initial|: how far the parameters travelled
};

// Like testing::max_difference_from_python, on a Shapes model: `steps` steps with seeded random normal
// gradients (some withheld, see `skipped`) and the LR factor 1 / (1 + step / 4), then the same in Python
// with `python_optimizer`, in float64 where it keeps float64 masters (`max_difference`).
Comparison compare(const std::string& name, const Values& overrides, const std::string& python_optimizer,
                   const Layout& layout, int steps, int skip = 0, const std::map<std::string, Values>& group_overrides = {}) {
  Shapes model(layout);
  auto optimizer = make(name, overrides, model, group_overrides);
  std::vector<at::Tensor> params;
  std::string sizes;
  for (auto& group : model.param_groups()) {
    sizes += std::to_string(group.params.size()) + ",";
    for (auto& p : group.params) params.push_back(p);
  }
  c10::List<at::Tensor> saved;
  for (auto& p : params) saved.push_back(p.detach().clone());
  for (int step = 0; step < steps; ++step) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(1000 + step);
    optimizer->set_lr_factor(factor_of(step));
    for (size_t i = 0; i < params.size(); ++i) {
      auto grad = torch::randn(params[i].sizes(), generator);
      saved.push_back(grad);
      params[i].mutable_grad() = skipped(step, i, skip) ? at::Tensor() : grad.clone();
    }
    optimizer->step();
  }
  for (auto& p : params) saved.push_back(p.detach().clone());
  auto dir = testing::temp_dir("trajectory-" + name);
  const std::string data = (dir / "trajectory.pt").string();
  auto bytes = torch::pickle_save(c10::IValue(saved));
  std::ofstream(data, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const std::string script = testing::write_file(dir / "replay.py", R"(import sys, torch
data, sizes = torch.load(sys.argv[1], weights_only=False), [int(s) for s in sys.argv[2].split(",") if s]
steps, skip = int(sys.argv[3]), int(sys.argv[4])
n = sum(sizes)
params = [t.clone().requires_grad_(True) for t in data[:n]]
groups, at = [], 0
for s in sizes:
    groups.append({"params": params[at:at + s]})
    at += s
optimizer = )" + python_optimizer + R"(
base = [g["lr"] for g in optimizer.param_groups]
for step in range(steps):
    for g, lr in zip(optimizer.param_groups, base):
        g["lr"] = lr / (1.0 + 0.25 * step)
    for i, p in enumerate(params):
        missing = skip > 0 and (step + i) % skip == skip - 1
        p.grad = None if missing else data[n * (1 + step) + i].clone()
    optimizer.step()
final = data[n * (1 + steps):]
if hasattr(optimizer, "max_difference"):
    difference = optimizer.max_difference(final)
else:
    difference = max(float((p.detach().double() - f.double()).abs().max()) for p, f in zip(params, final))
print(difference, max(float((f - i).abs().max()) for f, i in zip(final, data[:n])))
)");
  std::string out;
  const std::string command = "python3 " + script + " " + data + " " + sizes + " " + std::to_string(steps) + " " +
                              std::to_string(skip);
  if (testing::shell(command, &out) != 0) throw std::runtime_error("python reference failed: " + out);
  std::istringstream in(out);
  Comparison result;
  in >> result.difference >> result.movement;
  if (!in) throw std::runtime_error("python reference printed: " + out);
  std::cout << "[ compare  ] max |C++ - reference| = " << result.difference << ", max |movement| = " << result.movement
            << "\n";
  return result;
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

const Layout kMixed = {{"a", {6, 6}}, {"a", {5}}, {"a", {3, 4, 5}}, {"b", {7, 8}}, {"b", {2, 3, 4, 5}}};

TEST(Shampoo, FollowsFloat64ReferenceOnMatricesVectorsAndHigherOrderTensors) {
  // Every 5th gradient of each parameter is withheld (skipped parameters keep their state and step count).
  const auto result = compare("shampoo", kBase, reference("groups, " + kBaseArgs), kMixed, 14, 5);
  EXPECT_GT(result.movement, 0.05);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Shampoo, Float64PrecisionFollowsReferenceTightly) {
  const auto result = compare("shampoo", with(kBase, {{"precision", std::string("float64")}}),
                              reference("groups, " + kBaseArgs), kMixed, 14, 5);
  EXPECT_LT(result.difference, kFloat64Tolerance);
}

TEST(Shampoo, WithoutGraftingRootFourAndPassThroughDimsFollowsReference) {
  // grafting none: the raw P (and M^ before the first roots; 1-D tensors still take Adam); root 4;
  // max_precond_dim 4: [4, 40] keeps only L, [3, 4, 5] its first two dims, [6, 6] none (Adam).
  // Without grafting the factors' bias correction (c_s) shows in the update's size; matrix_eps 1e-4 too.
  const Layout layout = {{"a", {4, 40}}, {"a", {3, 4, 5}}, {"a", {6, 6}}, {"a", {5}}};
  const auto result = compare(
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
  const auto result = compare("shampoo", with(kBase, {{"correct_bias", false}, {"root", int64_t{4}}}),
                              reference("groups, " + kBaseArgs + ", correct_bias=False, root=4"), kMixed, 13);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Shampoo, DefaultsFollowReference) {
  // Frequency 10: Adam for nine steps, then the first inverse roots; shampoo_beta -1 = beta2.
  const auto result = compare("shampoo", {}, reference("groups"), kMixed, 13);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Shampoo, UnpreconditionedTensorsAreAdamW) {
  // 1-D tensors and a matrix whose dims both exceed max_precond_dim take the Adam update: PyTorch's AdamW
  // (decay p *= 1 - lr wd, then the bias-corrected Adam step). Both sides float32, rounded differently.
  const Layout layout = {{"a", {5}}, {"a", {6, 6}}, {"b", {3}}};
  const auto result = compare("shampoo", with(kBase, {{"max_precond_dim", int64_t{4}}, {"eps", 1e-6}}),
                              "torch.optim.AdamW(groups, lr=0.01, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1)",
                              layout, 12, 4);
  EXPECT_LT(result.difference, 1e-6);
}

TEST(Shampoo, SkipsParametersWithoutGradientAndScalesLr) {
  Shapes model({{"a", {4, 4}}, {"b", {3}}});
  auto optimizer = make("shampoo", {{"lr", 0.02}}, model, {{"b", {{"lr", 0.5}}}});
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
  Shapes model({{"a", {4, 5}}});
  for (const std::string precision : {"float32", "float64"}) {
    auto optimizer = make("shampoo", {{"precision", precision}, {"precondition_frequency", int64_t{1}}}, model);
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
  auto small = make("shampoo", {{"max_precond_dim", int64_t{5}}}, *model);  // u, v: no factors
  for (auto& p : model->parameters()) p.mutable_grad() = torch::randn_like(p);
  small->step();
  torch::serialize::OutputArchive archive;
  small->save(archive);
  std::ostringstream buffer;
  archive.save_to(buffer);
  auto full = make("shampoo", {}, *model);
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
