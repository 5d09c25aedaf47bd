#include <gtest/gtest.h>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>

#include "test_support.hpp"

namespace assay {
namespace {

/// JSON spelling of a recipe value (the reference script's options).
struct JsonOf {
  std::string operator()(bool b) const { return b ? "true" : "false"; }
  std::string operator()(int64_t i) const { return std::to_string(i); }
  std::string operator()(double d) const {
    char buffer[40];
    std::snprintf(buffer, sizeof buffer, "%.17g", d);
    return buffer;
  }
  std::string operator()(const std::string& s) const { return "\"" + s + "\""; }
  template <class T>
  std::string operator()(const std::vector<T>& list) const {
    std::string out = "[";
    for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + (*this)(list[i]);
    return out + "]";
  }
};

std::string json_of(const Values& values) {
  std::string out = "{";
  for (const auto& [key, value] : values) {
    out += (out.size() > 1 ? ", " : "") + JsonOf{}(key) + ": " + std::visit(JsonOf{}, value);
  }
  return out + "}";
}

/// Runs optimizer `name` for `steps` steps of seeded random gradients (varying LR factor) on
/// small_model(7, 6), then replays them in numpy float64 with `script` (sgd_reference.py) and returns the
/// largest absolute difference of the final parameters. *movement: largest |final - initial|.
/// `reference_overrides`: options changed for the replay only (to check that a difference is noticed).
double max_difference_from_float64(const std::string& name, const Values& overrides, int steps,
                                   const std::map<std::string, Values>& group_overrides, const std::string& script,
                                   double* movement = nullptr, const Values& reference_overrides = {}) {
  auto model = testing::small_model(7, 6);
  Context context;
  context.model = model.get();
  const Values values = testing::values_of(Kind::optimizer, name, overrides);
  for (const auto& [group, set] : group_overrides) {
    Values merged = values;
    for (const auto& [key, value] : set) merged[key] = value;
    context.group_values[group] = merged;
  }
  auto optimizer = testing::plugins().create<Optimizer>(name, values, context);

  std::vector<at::Tensor> ordered;
  std::string params = "[";
  for (auto& group : model->param_groups()) {
    for (auto& p : group.params) {
      ordered.push_back(p);
      params += (params.size() > 1 ? ", " : "") + std::string("{\"group\": \"") + group.name + "\"}";
    }
  }
  params += "]";
  c10::List<at::Tensor> saved;
  for (auto& p : ordered) saved.push_back(p.detach().clone());
  std::vector<double> factors;
  for (int step = 0; step < steps; ++step) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(777 + step);
    factors.push_back((step % 3 == 1 ? 0.5 : 1.0) / (1.0 + 0.1 * step));
    for (auto& p : ordered) {
      auto g = torch::randn(p.sizes(), generator);
      p.mutable_grad() = g.clone();
      saved.push_back(g);
    }
    optimizer->set_lr_factor(factors.back());
    optimizer->step();
  }
  double moved = 0;
  for (size_t i = 0; i < ordered.size(); ++i) {
    moved = std::max(moved, (ordered[i].detach() - saved.get(i)).abs().max().item<double>());
    saved.push_back(ordered[i].detach().clone());
  }
  if (movement) *movement = moved;

  auto dir = testing::temp_dir("float64-" + name);
  const std::string data = (dir / "trajectory.pt").string();
  auto bytes = torch::pickle_save(c10::IValue(saved));
  std::ofstream(data, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  auto replayed = [&](Values v) {
    for (const auto& [key, value] : reference_overrides) v[key] = value;
    return json_of(v);
  };
  std::string config = "{\"steps\": " + std::to_string(steps) + ", \"factors\": " + JsonOf{}(factors) +
                       ", \"options\": " + replayed(values) + ", \"params\": " + params + ", \"group_options\": {";
  for (const auto& [group, merged] : context.group_values) {
    config += (config.back() == '{' ? "" : ", ") + JsonOf{}(group) + ": " + replayed(merged);
  }
  config += "}}";
  const std::string config_path = testing::write_file(dir / "config.json", config);
  std::string out;
  if (testing::shell("python3 " + script + " " + data + " " + config_path, &out) != 0) {
    throw std::runtime_error("float64 reference failed: " + out);
  }
  return std::stod(out);
}

const std::string kReference = ASSAY_SOURCE_DIR "/plugins/optimizers/sgd/sgd_reference.py";

TEST(Sgd, FollowsPyTorchsSgdWithMomentumAndWeightDecay) {
  const double diff = testing::max_difference_from_python(
      "sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"dampening", 0.1}, {"weight_decay", 0.01}},
      "torch.optim.SGD(groups, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)", 12);
  EXPECT_LT(diff, 1e-6);
}

TEST(Sgd, NesterovFollowsPyTorch) {
  const double diff = testing::max_difference_from_python(
      "sgd", {{"lr", 0.05}, {"momentum", 0.5}, {"nesterov", true}},
      "torch.optim.SGD(groups, lr=0.05, momentum=0.5, nesterov=True)", 12);
  EXPECT_LT(diff, 1e-6);
}

TEST(Sgd, SaveLoadContinuesBitIdentically) {
  EXPECT_TRUE(testing::continues_identically_after_load("sgd", {{"momentum", 0.9}}, 4, 5));
}

TEST(Sgd, NesterovWithoutMomentumIsRefused) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  EXPECT_THROW(testing::plugins().create<Optimizer>("sgd", testing::values_of(Kind::optimizer, "sgd", {{"nesterov", true}}),
                                                    context),
               std::invalid_argument);
}

TEST(Sgd, DecoupledWeightDecayFollowsFloat64Sgdw) {
  // The paper's SGD: momentum 0.98, no dampening, decoupled weight decay.
  double movement = 0;
  const double diff = max_difference_from_float64(
      "sgd", {{"lr", 0.05}, {"momentum", 0.98}, {"weight_decay", 0.1}, {"decoupled_weight_decay", true}}, 14, {},
      kReference, &movement);
  EXPECT_LT(diff, 2e-6);  // parameters reach ~2 in float32
  EXPECT_GT(movement, 0.1);
  std::cout << "sgdw: max |plugin - float64| = " << diff << ", movement " << movement << "\n";
}

TEST(Sgd, DecoupledWeightDecayWithNesterovDampeningOrNoMomentum) {
  const double nesterov = max_difference_from_float64(
      "sgd",
      {{"lr", 0.05}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 0.2}, {"decoupled_weight_decay", true}},
      12, {}, kReference);
  const double dampening = max_difference_from_float64(
      "sgd",
      {{"lr", 0.05}, {"momentum", 0.9}, {"dampening", 0.3}, {"weight_decay", 0.2}, {"decoupled_weight_decay", true}},
      12, {}, kReference);
  const double plain = max_difference_from_float64(
      "sgd", {{"lr", 0.1}, {"weight_decay", 0.2}, {"decoupled_weight_decay", true}}, 12, {}, kReference);
  EXPECT_LT(nesterov, 1e-6);
  EXPECT_LT(dampening, 1e-6);
  EXPECT_LT(plain, 1e-6);
  std::cout << "sgdw nesterov " << nesterov << ", dampening " << dampening << ", no momentum " << plain << "\n";
}

TEST(Sgd, PerGroupDecayModesFollowFloat64) {
  // Decoupled for the embedding, torch's L2 for the head (with its own rate and decay).
  const double diff = max_difference_from_float64(
      "sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 0.1}, {"decoupled_weight_decay", true}}, 12,
      {{"head", {{"decoupled_weight_decay", false}, {"weight_decay", 0.05}, {"lr", 0.02}}}}, kReference);
  EXPECT_LT(diff, 1e-6);
  std::cout << "sgd per-group decay modes: max |plugin - float64| = " << diff << "\n";
}

TEST(Sgd, Float64ReferenceAgreesWithTheCoupledDefault) {  // the reference itself, on torch's L2 SGD
  const double diff = max_difference_from_float64(
      "sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"dampening", 0.1}, {"weight_decay", 0.1}}, 12, {}, kReference);
  EXPECT_LT(diff, 1e-6);
  std::cout << "coupled L2 default: max |plugin - float64| = " << diff << "\n";
}

TEST(Sgd, ReferenceComparisonNoticesTheDecayMode) {  // the plugin's SGDW replayed as L2 SGD
  const double diff = max_difference_from_float64(
      "sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 0.5}, {"decoupled_weight_decay", true}}, 12, {},
      kReference, nullptr, {{"decoupled_weight_decay", false}});
  EXPECT_GT(diff, 1e-3);
  std::cout << "sgdw replayed as L2: max difference " << diff << "\n";
}

TEST(Sgd, DecoupledSaveLoadContinuesBitIdentically) {
  EXPECT_TRUE(testing::continues_identically_after_load(
      "sgd", {{"momentum", 0.98}, {"weight_decay", 0.1}, {"decoupled_weight_decay", true}}, 4, 5));
}

}  // namespace
}  // namespace assay
