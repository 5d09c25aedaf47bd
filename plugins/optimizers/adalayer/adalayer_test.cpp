#include <gtest/gtest.h>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "test_support.hpp"

namespace assay {
namespace {

/// A one-block attention model with the parameter groups Adalayer distinguishes: embedding, a fused QKV
/// (weight [15, 5] = Q, K, V blocks of 5 rows, and bias [15]), a LayerNorm (weight and bias [5]) and a
/// head (weight [7, 5] and bias [7]). Parameters are registered in an order that differs from the groups'.
class TinyTransformer : public Model {
 public:
  TinyTransformer() {
    torch::manual_seed(11);
    head_ = register_parameter("head", torch::randn({7, 5}) * 0.5);
    head_bias_ = register_parameter("head_bias", torch::randn({7}) * 0.1);
    ln_ = register_parameter("ln", torch::ones({5}) + torch::randn({5}) * 0.1);
    embed_ = register_parameter("embed", torch::randn({7, 5}));
    qkv_ = register_parameter("qkv", torch::randn({15, 5}) * 0.3);
    qkv_bias_ = register_parameter("qkv_bias", torch::randn({15}) * 0.1);
    ln_bias_ = register_parameter("ln_bias", torch::randn({5}) * 0.1);
  }

  at::Tensor forward(const at::Tensor& inputs) override {
    auto x = embed_.index_select(0, inputs.flatten()).view({inputs.size(0), inputs.size(1), 5});
    auto qkv = torch::nn::functional::linear(x, qkv_, qkv_bias_).chunk(3, -1);
    auto attention = torch::softmax(qkv[0].matmul(qkv[1].transpose(1, 2)) / std::sqrt(5.0), -1).matmul(qkv[2]);
    auto h = torch::layer_norm(x + attention, {5}, ln_, ln_bias_);
    return torch::nn::functional::linear(h, head_, head_bias_);  // [B, T, 7]
  }

  std::vector<ParamGroup> param_groups() override {
    return {{"embedding", {embed_}},
            {"qkv", {qkv_, qkv_bias_}},
            {"norms", {ln_, ln_bias_}},
            {"head", {head_, head_bias_}}};
  }

  std::vector<std::pair<std::string, std::string>> names_and_groups() {
    std::vector<std::pair<std::string, std::string>> out;
    auto named = named_parameters();
    for (auto& group : param_groups()) {
      for (auto& p : group.params) {
        for (auto& item : named) {
          if (item.value().is_same(p)) out.emplace_back(item.key(), group.name);
        }
      }
    }
    return out;
  }

 private:
  at::Tensor embed_, qkv_, qkv_bias_, ln_, ln_bias_, head_, head_bias_;
};

std::shared_ptr<Optimizer> make_adalayer(Model& model, const Values& overrides,
                                         const std::map<std::string, Values>& group_overrides = {}) {
  Context context;
  context.model = &model;
  const Values values = testing::values_of(Kind::optimizer, "adalayer", overrides);
  for (const auto& [group, set] : group_overrides) {
    Values merged = values;
    for (const auto& [key, value] : set) merged[key] = value;
    context.group_values[group] = merged;
  }
  return testing::plugins().create<Optimizer>("adalayer", values, context);
}

/// Scale of the random gradient of each element: the Q, K, V blocks and the head's rows get gradients of
/// very different sizes, so that one scalar per tensor would give visibly different updates.
at::Tensor gradient_scale(const std::string& name, at::IntArrayRef sizes) {
  if (name == "qkv" || name == "qkv_bias") {
    auto blocks = torch::tensor({0.1, 1.0, 4.0}, torch::kFloat).repeat_interleave(5);
    return name == "qkv" ? blocks.unsqueeze(1).expand(sizes).contiguous() : blocks;
  }
  if (name == "head" || name == "head_bias") {
    auto rows = torch::pow(10.0, (torch::arange(7, torch::kFloat) - 3) / 2.0);  // 0.03 ... 31.6
    return name == "head" ? rows.unsqueeze(1).expand(sizes).contiguous() : rows;
  }
  if (name == "ln") return torch::full(sizes, 0.5);
  if (name == "ln_bias") return torch::full(sizes, 2.0);
  return torch::ones(sizes);
}

/// Gradients of step `step` in names_and_groups() order.
std::vector<at::Tensor> scaled_grads(TinyTransformer& model, int step) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(4321 + step);
  auto named = model.named_parameters();
  std::vector<at::Tensor> grads;
  for (auto& [name, group] : model.names_and_groups()) {
    const auto sizes = named[name].sizes();
    grads.push_back(torch::randn(sizes, generator) * gradient_scale(name, sizes));
  }
  return grads;
}

double factor_of(int step) { return (step % 3 == 1 ? 0.5 : 1.0) / (1.0 + 0.1 * step); }

void step_with(Optimizer& optimizer, TinyTransformer& model, const std::vector<at::Tensor>& grads, double factor) {
  auto named = model.named_parameters();
  auto order = model.names_and_groups();
  for (size_t i = 0; i < order.size(); ++i) named[order[i].first].mutable_grad() = grads[i].clone();
  optimizer.set_lr_factor(factor);
  optimizer.step();
}

std::vector<at::Tensor> ordered_params(TinyTransformer& model) {
  auto named = model.named_parameters();
  std::vector<at::Tensor> out;
  for (auto& [name, group] : model.names_and_groups()) out.push_back(named[name].detach().clone());
  return out;
}

/// JSON spelling of a recipe value (the reference script's options).
struct JsonOf {
  std::string operator()(bool b) const { return b ? "true" : "false"; }
  std::string operator()(int64_t i) const { return std::to_string(i); }
  std::string operator()(double d) const {
    char buffer[40];
    std::snprintf(buffer, sizeof buffer, "%.17g", d);
    return buffer;
  }
  std::string operator()(const std::string& s) const {
    std::string out = "\"";
    for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return out + "\"";
  }
  template <class T>
  std::string operator()(const std::vector<T>& list) const {
    std::string out = "[";
    for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + (*this)(list[i]);
    return out + "]";
  }
};

std::string json_of(const Value& value) { return std::visit(JsonOf{}, value); }

std::string json_of(const Values& values) {
  std::string out = "{";
  for (const auto& [key, value] : values) {
    out += (out.size() > 1 ? ", " : "") + json_of(Value(key)) + ": " + json_of(value);
  }
  return out + "}";
}

struct Comparison {
  double max_difference = 0;  ///< largest |plugin - float64 reference| over the final parameters
  double movement = 0;        ///< largest |final - initial|: that the run did move the parameters
};

/// Runs adalayer with `overrides` for `steps` steps of scaled_grads on TinyTransformer, then replays them
/// in adalayer_reference.py (numpy float64), whose options are `overrides` with `reference_overrides` on
/// top (to check that the comparison notices a wrong block structure).
Comparison compare_with_reference(const Values& overrides, int steps,
                                  const std::map<std::string, Values>& group_overrides = {},
                                  const Values& reference_overrides = {}) {
  auto model = std::make_shared<TinyTransformer>();
  auto optimizer = make_adalayer(*model, overrides, group_overrides);
  c10::List<at::Tensor> saved;
  const auto initial = ordered_params(*model);
  for (auto& p : initial) saved.push_back(p);
  std::vector<double> factors;
  for (int step = 0; step < steps; ++step) {
    auto grads = scaled_grads(*model, step);
    factors.push_back(factor_of(step));
    step_with(*optimizer, *model, grads, factors.back());
    for (auto& g : grads) saved.push_back(g);
  }
  const auto final = ordered_params(*model);
  Comparison result;
  for (size_t i = 0; i < final.size(); ++i) {
    result.movement = std::max(result.movement, (final[i] - initial[i]).abs().max().item<double>());
    saved.push_back(final[i]);
  }

  auto dir = testing::temp_dir("adalayer-reference");
  const std::string data = (dir / "trajectory.pt").string();
  auto bytes = torch::pickle_save(c10::IValue(saved));
  std::ofstream(data, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  Values options = testing::values_of(Kind::optimizer, "adalayer", overrides);
  for (const auto& [key, value] : reference_overrides) options[key] = value;
  std::string config = "{\"steps\": " + std::to_string(steps) + ", \"factors\": " + json_of(Value(factors)) +
                       ", \"options\": " + json_of(options) + ", \"group_options\": {";
  bool first = true;
  for (const auto& [group, set] : group_overrides) {
    Values merged = options;
    for (const auto& [key, value] : set) merged[key] = value;
    config += (first ? "" : ", ") + json_of(Value(group)) + ": " + json_of(merged);
    first = false;
  }
  config += "}, \"params\": [";
  first = true;
  for (auto& [name, group] : model->names_and_groups()) {
    config += std::string(first ? "" : ", ") + "{\"name\": " + json_of(Value(name)) + ", \"group\": " +
              json_of(Value(group)) + "}";
    first = false;
  }
  config += "]}";
  const std::string config_path = testing::write_file(dir / "config.json", config);

  std::string out;
  const std::string script = ASSAY_SOURCE_DIR "/plugins/optimizers/adalayer/adalayer_reference.py";
  if (testing::shell("python3 " + script + " " + data + " " + config_path, &out) != 0) {
    throw std::runtime_error("adalayer reference failed: " + out);
  }
  result.max_difference = std::stod(out);
  return result;
}

/// Saves after `before` steps, runs `after` more; a fresh optimizer on a copy of the model, loaded from
/// the save, must end with bit-identical parameters.
bool continues_identically(const Values& overrides, int before, int after) {
  auto model = std::make_shared<TinyTransformer>();
  auto optimizer = make_adalayer(*model, overrides);
  for (int step = 0; step < before; ++step) step_with(*optimizer, *model, scaled_grads(*model, step), factor_of(step));
  torch::serialize::OutputArchive archive;
  optimizer->save(archive);
  std::ostringstream buffer;
  archive.save_to(buffer);

  auto twin = std::make_shared<TinyTransformer>();
  {
    torch::NoGradGuard no_grad;
    auto from = model->parameters(), to = twin->parameters();
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  auto resumed = make_adalayer(*twin, overrides);
  torch::serialize::InputArchive input;
  std::istringstream in(buffer.str());
  input.load_from(in);
  resumed->load(input);
  for (int step = before; step < before + after; ++step) {
    auto grads = scaled_grads(*model, step);
    step_with(*optimizer, *model, grads, factor_of(step));
    step_with(*resumed, *twin, grads, factor_of(step));
  }
  auto a = model->parameters(), b = twin->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

TEST(Adalayer, FollowsFloat64ReferenceWithPerGroupOptions) {
  const auto r = compare_with_reference(
      {{"lr", 0.02}, {"beta1", 0.8}, {"beta2", 0.95}, {"eps", 1e-8}, {"weight_decay", 0.05}}, 14,
      {{"head", {{"lr", 0.03}, {"beta2", 0.9}}}, {"norms", {{"weight_decay", 0.0}}}});
  EXPECT_LT(r.max_difference, 2e-6);
  EXPECT_GT(r.movement, 0.1);
  std::cout << "adalayer: max |plugin - reference| = " << r.max_difference << ", movement " << r.movement << "\n";
}

TEST(Adalayer, DefaultsFollowFloat64Reference) {  // paper's betas (0.9, 0.95) and eps 1e-15
  const auto r = compare_with_reference({{"lr", 0.01}}, 12);
  EXPECT_LT(r.max_difference, 2e-6);
  EXPECT_GT(r.movement, 0.05);
  std::cout << "adalayer defaults: max |plugin - reference| = " << r.max_difference << ", movement " << r.movement
            << "\n";
}

TEST(Adalayer, FrozenVariantFollowsFloat64Reference) {
  const auto r = compare_with_reference({{"variant", "frozen"}, {"freeze_after", int64_t{5}}, {"lr", 0.02},
                                         {"weight_decay", 0.01}, {"weight_decay_mode", "independent"}},
                                        17, {{"head", {{"lr", 0.01}}}});
  EXPECT_LT(r.max_difference, 2e-6);
  EXPECT_GT(r.movement, 0.05);
  std::cout << "frozen: max |plugin - reference| = " << r.max_difference << ", movement " << r.movement << "\n";
}

TEST(Adalayer, SgdAdaptiveLastFollowsFloat64Reference) {
  // The paper's "SGD + Adalayer": a large SGD learning rate, the last layer and norms at their own.
  const auto r = compare_with_reference(
      {{"variant", "sgd_adaptive_last"}, {"lr", 0.1}, {"beta1", 0.9}, {"weight_decay", 0.01}}, 14,
      {{"head", {{"lr", 0.01}}}, {"norms", {{"lr", 0.01}, {"beta2", 0.99}}}});
  EXPECT_LT(r.max_difference, 5e-6);
  EXPECT_GT(r.movement, 0.1);
  std::cout << "sgd_adaptive_last: max |plugin - reference| = " << r.max_difference << ", movement " << r.movement
            << "\n";
}

TEST(Adalayer, ReferenceComparisonNoticesAWrongBlockStructure) {
  // The plugin with one scalar per tensor for the QKV (or head) group against the reference with blocks.
  const Values options{{"lr", 0.02}, {"eps", 1e-8}};
  Values qkv_as_tensor = options, head_as_tensor = options;
  qkv_as_tensor["qkv_group"] = std::string("none");
  head_as_tensor["last_layer_group"] = std::string("none");
  const double qkv = compare_with_reference(qkv_as_tensor, 12, {}, {{"qkv_group", "qkv"}}).max_difference;
  const double head = compare_with_reference(head_as_tensor, 12, {}, {{"last_layer_group", "head"}}).max_difference;
  Values sgd = options;
  sgd["variant"] = std::string("sgd_adaptive_last");
  const double variant = compare_with_reference(sgd, 12, {}, {{"variant", "adalayer"}}).max_difference;
  EXPECT_GT(qkv, 1e-2);
  EXPECT_GT(head, 1e-2);
  EXPECT_GT(variant, 1e-2);
  std::cout << "wrong structure: qkv " << qkv << ", head " << head << ", variant " << variant << "\n";
}

TEST(Adalayer, FrozenVariantDoesNotMoveDuringEstimation) {
  auto model = std::make_shared<TinyTransformer>();
  auto optimizer = make_adalayer(*model, {{"variant", "frozen"}, {"freeze_after", int64_t{4}}, {"weight_decay", 0.1}});
  const auto initial = ordered_params(*model);
  for (int step = 0; step < 4; ++step) step_with(*optimizer, *model, scaled_grads(*model, step), 1.0);
  auto after_freeze = ordered_params(*model);
  for (size_t i = 0; i < initial.size(); ++i) EXPECT_TRUE(torch::equal(initial[i], after_freeze[i])) << i;
  step_with(*optimizer, *model, scaled_grads(*model, 4), 1.0);
  auto moved = ordered_params(*model);
  for (size_t i = 0; i < initial.size(); ++i) EXPECT_FALSE(torch::equal(initial[i], moved[i])) << i;
}

TEST(Adalayer, SaveLoadContinuesBitIdentically) {
  EXPECT_TRUE(continues_identically({{"lr", 0.02}, {"weight_decay", 0.05}}, 4, 5));
  EXPECT_TRUE(continues_identically({{"variant", "frozen"}, {"freeze_after", int64_t{3}}}, 2, 4));  // inside
  EXPECT_TRUE(continues_identically({{"variant", "frozen"}, {"freeze_after", int64_t{3}}}, 5, 4));  // after
  EXPECT_TRUE(continues_identically({{"variant", "sgd_adaptive_last"}, {"lr", 0.1}}, 4, 5));
  EXPECT_TRUE(testing::continues_identically_after_load("adalayer", {{"lr", 0.01}}, 4, 5));  // quadratic_mlp
}

TEST(Adalayer, LoadRefusesTheStateOfAnotherModel) {
  auto small = testing::small_model(7, 6);
  Context context;
  context.model = small.get();
  auto other =
      testing::plugins().create<Optimizer>("adalayer", testing::values_of(Kind::optimizer, "adalayer"), context);
  torch::serialize::OutputArchive archive;
  other->save(archive);
  std::ostringstream buffer;
  archive.save_to(buffer);
  auto model = std::make_shared<TinyTransformer>();
  auto optimizer = make_adalayer(*model, {});
  torch::serialize::InputArchive input;
  std::istringstream in(buffer.str());
  input.load_from(in);
  EXPECT_THROW(optimizer->load(input), std::runtime_error);
}

TEST(Adalayer, RefusesBadConfigurations) {
  auto model = std::make_shared<TinyTransformer>();
  // A recipe override for a group the model does not have.
  EXPECT_THROW(make_adalayer(*model, {}, {{"attention", {}}}), std::invalid_argument);
  // Options that describe the whole model cannot differ per group.
  EXPECT_THROW(make_adalayer(*model, {}, {{"head", {{"variant", "frozen"}}}}), std::invalid_argument);
  EXPECT_THROW(make_adalayer(*model, {}, {{"qkv", {{"qkv_group", "embedding"}}}}), std::invalid_argument);
  // A qkv group whose tensors do not split into 3 equal blocks (head: 7 rows).
  EXPECT_THROW(make_adalayer(*model, {{"qkv_group", "head"}}), std::invalid_argument);
  EXPECT_THROW(make_adalayer(*model, {{"beta1", 1.0}}), std::invalid_argument);
  // Groups named in the options but absent from the model are simply unused.
  EXPECT_NO_THROW(make_adalayer(*model, {{"norm_group", "layernorms"}, {"last_layer_group", "unembedding"}}));
}

TEST(Adalayer, LrIsTheFirstGroupsScaledRate) {
  auto model = std::make_shared<TinyTransformer>();
  auto optimizer = make_adalayer(*model, {{"lr", 0.02}}, {{"embedding", {{"lr", 0.5}}}});
  optimizer->set_lr_factor(0.25);
  EXPECT_DOUBLE_EQ(optimizer->lr(), 0.125);
}

TEST(Adalayer, EveryVariantTrainsTheTinyModel) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(5);
  auto inputs = torch::randint(7, {16, 6}, generator);
  auto targets = torch::randint(7, {16, 6}, generator);
  for (const char* variant : {"adalayer", "frozen", "sgd_adaptive_last"}) {
    auto model = std::make_shared<TinyTransformer>();
    const bool sgd = std::string(variant) == "sgd_adaptive_last";  // SGD groups at 10x the rate
    std::map<std::string, Values> groups;
    if (sgd) groups = {{"head", {{"lr", 0.03}}}, {"norms", {{"lr", 0.03}}}};
    auto optimizer =
        make_adalayer(*model, {{"variant", variant}, {"lr", sgd ? 0.3 : 0.03}, {"freeze_after", int64_t{5}}}, groups);
    auto loss_of = [&] {
      return torch::cross_entropy_loss(model->forward(inputs).reshape({-1, 7}), targets.flatten());
    };
    const double before = loss_of().item<double>();
    for (int step = 0; step < 40; ++step) {
      for (auto& p : model->parameters()) p.mutable_grad().reset();
      loss_of().backward();
      optimizer->set_lr_factor(1.0);
      optimizer->step();
    }
    const double after = loss_of().item<double>();
    EXPECT_LT(after, 0.8 * before);
    std::cout << variant << ": loss " << before << " -> " << after << "\n";
  }
}

}  // namespace
}  // namespace assay
