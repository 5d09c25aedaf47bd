#include <gtest/gtest.h>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include "test_support.hpp"

namespace assay {
namespace {

// The float64 numpy reference (soap_reference.py, written from shared/papers/soap.md), as a Python
// expression over `groups` for the replay scripts below and for testing::max_difference_from_python.
std::string reference(const std::string& arguments) {
  return "__import__('sys').path.insert(0, '" ASSAY_SOURCE_DIR "/plugins/optimizers/soap') or "
         "__import__('soap_reference').Soap(" + arguments + ")";
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

// Common options for the reference comparisons: several refreshes within 13 steps (frequency 3), betas
// and shampoo_beta all different so that a swapped decay would show.
const Values kBase = {{"lr", 0.01}, {"beta1", 0.9}, {"beta2", 0.95}, {"shampoo_beta", 0.9}, {"weight_decay", 0.1},
                      {"precondition_frequency", int64_t{3}}};
const std::string kBaseArgs = "lr=0.01, betas=(0.9, 0.95), shampoo_beta=0.9, weight_decay=0.1, precondition_frequency=3";

Values with(Values values, const Values& more) {
  for (const auto& [k, v] : more) values[k] = v;
  return values;
}

// Tolerances. Every comparison is well posed: each first factor GG_k is full rank or has a one-dimensional
// null space (whose eigenvector is then unique up to sign), and the parameter trajectory is invariant to
// eigenvector signs (flipping column i of Q_k flips slice i of the projected gradient and of m, leaves v
// unchanged, and cancels in the back-projection), so float32 and the float64 reference differ by rounding
// only. Measured: 1.5e-7 .. 3.3e-7 in every float32 comparison -- the same as with precision = "float64"
// (1.5e-7), i.e. dominated by rounding the float32 parameters (ulp/2 ~ 3e-8..6e-8 per step over 13 steps),
// not by float32 eigh/QR. 2e-6 leaves a x6 margin for other BLAS/LAPACK builds. Mistakes, measured by
// mutating the reference on the kMixed run below: weight decay before instead of after the update moves
// parameters by 3.5e-5 (the smallest), eps inside the sqrt 1.3e-3, shampoo_beta ignored 3.6e-3, factors
// updated before the projection 4.6e-3, refresh without sorting 8.1e-3, a fresh eigh instead of power
// iteration + QR 1.1e-2, v not permuted 1.3e-2, no bias correction 1.7e-2, m not carried through the
// refresh 5.8e-2: all at least x17 above the tolerance. (The descending order of the first basis is not
// visible in the parameters -- with m = v = 0 a consistent permutation of columns and coordinates changes
// nothing -- so FirstBasisIsOrderedByDescendingEigenvalue checks it on the saved state.)
constexpr double kFloat32Tolerance = 2e-6;
constexpr double kFloat64Tolerance = 1e-6;
// quadratic_mlp's first u gradient ([6, 7]) has squared singular values 15.4 ... 0.385, 0.019 (and 0 for
// R): a gap of 0.019 under a norm of 15.4, so float32 eigh mixes those two eigenvectors at ~6e-8 x 800
// ~ 5e-5. Measured 9.4e-7 with float32 factors vs 4.5e-8 with precision = "float64"; x5 margin.
constexpr double kQuadraticMlpTolerance = 5e-6;

TEST(Soap, FollowsFloat64ReferenceOnQuadraticMlp) {
  // u, v: [6, 7], both dims preconditioned (the 7x7 first factor has a one-dimensional null space:
  // well posed). w: [6, 2]: with max_precond_dim 5 for the head only its 2x2 factor is kept (its 6x6
  // first factor would have rank 2 and an arbitrary basis in the null space).
  const double diff = testing::max_difference_from_python(
      "soap", kBase, reference("[groups[0], dict(groups[1], max_precond_dim=5)], " + kBaseArgs), 13,
      {{"head", {{"max_precond_dim", int64_t{5}}}}});
  std::cout << "[ compare  ] max |C++ - reference| = " << diff << "\n";
  EXPECT_LT(diff, kQuadraticMlpTolerance);
}

TEST(Soap, Float64PrecisionFollowsReferenceOnQuadraticMlp) {
  const double diff = testing::max_difference_from_python(
      "soap", with(kBase, {{"precision", std::string("float64")}}),
      reference("[groups[0], dict(groups[1], max_precond_dim=5)], " + kBaseArgs), 13,
      {{"head", {{"max_precond_dim", int64_t{5}}}}});
  std::cout << "[ compare  ] max |C++ - reference| = " << diff << "\n";
  EXPECT_LT(diff, kFloat64Tolerance);
}

const Layout kMixed = {{"a", {6, 6}}, {"a", {5}}, {"a", {3, 4, 5}}, {"b", {7, 8}}, {"b", {2, 3, 4, 5}}};

TEST(Soap, FollowsFloat64ReferenceOnMatricesVectorsAndHigherOrderTensors) {
  // Every 5th gradient of each parameter is withheld (skipped parameters keep their state and step count).
  const auto result = compare("soap", kBase, reference("groups, " + kBaseArgs), kMixed, 14, 5);
  EXPECT_GT(result.movement, 0.05);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Soap, Float64PrecisionFollowsReferenceTightly) {
  const auto result = compare("soap", with(kBase, {{"precision", std::string("float64")}}), reference("groups, " + kBaseArgs),
                              kMixed, 14, 5);
  EXPECT_LT(result.difference, kFloat64Tolerance);
}

TEST(Soap, DimsAboveMaxPrecondDimPassThrough) {
  // max_precond_dim 4: [4, 40] keeps its 4x4 factor only; [3, 4, 5] its first two; [6, 6] none (Adam with
  // the first step skipped); group b overrides back to the default and preconditions [7, 8] fully.
  const Layout layout = {{"a", {4, 40}}, {"a", {3, 4, 5}}, {"a", {6, 6}}, {"a", {5}}, {"b", {7, 8}}};
  const auto result = compare("soap", with(kBase, {{"max_precond_dim", int64_t{4}}}),
                              reference("[groups[0], dict(groups[1], max_precond_dim=10000)], " + kBaseArgs + ", max_precond_dim=4"),
                              layout, 13, 0, {{"b", {{"max_precond_dim", int64_t{10000}}}}});
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Soap, MergeDimsFollowsReference) {
  // max 6: [2, 3, 4, 5] -> [6, 4, 5]; [6, 7] -> [6, 7] (7 passes through); [8, 2] -> [8, 2] (8 passes
  // through); [3, 2, 5] -> [6, 5]; [5] stays a vector.
  const Layout layout = {{"a", {2, 3, 4, 5}}, {"a", {6, 7}}, {"a", {8, 2}}, {"a", {3, 2, 5}}, {"a", {5}}};
  const auto result = compare("soap", with(kBase, {{"merge_dims", true}, {"max_precond_dim", int64_t{6}}}),
                              reference("groups, " + kBaseArgs + ", merge_dims=True, max_precond_dim=6"), layout, 13);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Soap, Precondition1dNormalizeGradsWithoutBiasCorrectionFollowReference) {
  // A 1-D parameter of size 2: its first factor g g^T has a one-dimensional null space (well posed).
  const Layout layout = {{"a", {2}}, {"a", {6, 6}}, {"a", {3, 4, 5}}};
  const auto result = compare(
      "soap",
      with(kBase, {{"precondition_1d", true}, {"normalize_grads", true}, {"correct_bias", false},
                   {"precondition_frequency", int64_t{2}}}),
      reference("groups, lr=0.01, betas=(0.9, 0.95), shampoo_beta=0.9, weight_decay=0.1, precondition_frequency=2, "
                "precondition_1d=True, normalize_grads=True, correct_bias=False"),
      layout, 13);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Soap, DefaultsFollowReference) {
  // The paper's defaults (frequency 10: one refresh in 13 steps; shampoo_beta -1 = beta2).
  const auto result = compare("soap", {}, reference("groups"), kMixed, 13);
  EXPECT_LT(result.difference, kFloat32Tolerance);
}

TEST(Soap, FirstCallOnlyBuildsTheBasis) {
  Shapes model({{"a", {4, 4}}, {"a", {3}}});
  auto optimizer = make("soap", {{"weight_decay", 0.5}}, model);
  auto params = model.parameters();
  std::vector<at::Tensor> before;
  for (auto& p : params) before.push_back(p.detach().clone());
  for (auto& p : params) p.mutable_grad() = torch::ones_like(p);
  optimizer->step();  // first call: no update, no weight decay
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], before[i]));
  optimizer->step();  // second: t = 1, a full Adam step
  for (size_t i = 0; i < params.size(); ++i) EXPECT_FALSE(torch::equal(params[i], before[i]));
}

// The state SOAP saves for the first parameter, read back from a checkpoint archive.
at::Tensor saved(Optimizer& optimizer, const std::string& name) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream buffer;
  archive.save_to(buffer);
  torch::serialize::InputArchive input;
  std::istringstream in(buffer.str());
  input.load_from(in);
  at::Tensor t;
  input.read("soap.group0.param0." + name, t);
  return t;
}

TEST(Soap, FirstBasisIsOrderedByDescendingEigenvalue) {
  Shapes model({{"a", {5, 6}}});  // L full rank, R with one zero eigenvalue (last)
  auto optimizer = make("soap", {}, model);
  auto p = model.parameters()[0];  // a handle (parameters() returns a temporary vector)
  p.mutable_grad() = torch::randn_like(p);
  optimizer->step();
  EXPECT_EQ(saved(*optimizer, "step").item<int64_t>(), 0);  // the first call is not a step
  for (const char* k : {"0", "1"}) {
    const auto q = saved(*optimizer, std::string("q") + k).to(torch::kDouble);
    const auto gg = saved(*optimizer, std::string("gg") + k).to(torch::kDouble);
    const auto rotated = q.t().mm(gg).mm(q);  // diagonal, eigenvalues descending
    const auto diagonal = rotated.diagonal();
    EXPECT_LT((rotated - torch::diag(diagonal)).abs().max().item<double>(), 1e-5 * gg.abs().max().item<double>());
    EXPECT_TRUE(torch::all(diagonal.slice(0, 0, -1) >= diagonal.slice(0, 1)).item<bool>()) << diagonal;
  }
  optimizer->step();
  EXPECT_EQ(saved(*optimizer, "step").item<int64_t>(), 1);
}

TEST(Soap, SkipsParametersWithoutGradientAndScalesLr) {
  Shapes model({{"a", {4, 4}}, {"b", {3}}});
  auto optimizer = make("soap", {{"lr", 0.02}}, model, {{"b", {{"lr", 0.5}}}});
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

TEST(Soap, SaveLoadContinuesBitIdentically) {
  // Saved after the first call only (basis, no moments yet), and mid-run with refreshes on both sides.
  EXPECT_TRUE(testing::continues_identically_after_load("soap", {{"precondition_frequency", int64_t{2}}}, 1, 6));
  EXPECT_TRUE(testing::continues_identically_after_load("soap", {{"precondition_frequency", int64_t{2}}}, 5, 6));
  EXPECT_TRUE(testing::continues_identically_after_load(
      "soap", {{"precondition_frequency", int64_t{3}}, {"merge_dims", true}, {"normalize_grads", true}}, 4, 5));
  EXPECT_TRUE(testing::continues_identically_after_load(
      "soap", {{"precondition_frequency", int64_t{3}}, {"precision", std::string("float64")}}, 4, 5));
}

TEST(Soap, LoadRefusesAnotherLayout) {
  auto model = testing::small_model(7, 6);
  auto merged = make("soap", {{"merge_dims", true}}, *model);  // [6, 7] -> one 42x42 factor
  for (auto& p : model->parameters()) p.mutable_grad() = torch::randn_like(p);
  merged->step();
  torch::serialize::OutputArchive archive;
  merged->save(archive);
  std::ostringstream buffer;
  archive.save_to(buffer);
  auto plain = make("soap", {}, *model);
  torch::serialize::InputArchive input;
  std::istringstream in(buffer.str());
  input.load_from(in);
  EXPECT_THROW(plain->load(input), std::runtime_error);
}

TEST(Soap, UnknownGroupIsRefused) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  context.group_values["attention"] = testing::values_of(Kind::optimizer, "soap");
  EXPECT_THROW(testing::plugins().create<Optimizer>("soap", testing::values_of(Kind::optimizer, "soap"), context),
               std::invalid_argument);
}

}  // namespace
}  // namespace assay
