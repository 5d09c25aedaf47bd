#include <assay/layers.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <fstream>

#include "mixed_precision.hpp"
#include "test_support.hpp"

namespace assay {
namespace {

constexpr int64_t kVocab = 11, kContext = 16;

std::shared_ptr<Model> gpt(const Values& overrides, uint64_t seed = 0, TaskShape shape = {kVocab, kVocab, kContext}) {
  Context context;
  context.seed = seed;
  context.task_shape = shape;
  torch::manual_seed(seed);
  return testing::plugins().create<Model>("gpt", testing::values_of(Kind::model, "gpt", overrides), context);
}

at::Tensor tokens(int64_t batch, int64_t time, uint64_t seed = 1) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(kVocab, {batch, time}, generator, torch::kLong);
}

std::string json_of(const Values& values) {
  std::string out = "{";
  for (const auto& [key, value] : values) out += (out.size() > 1 ? ", \"" : "\"") + key + "\": " + to_toml(value);
  return out + "}";
}

// Runs gpt_reference.py (float64, explicit attention) on the model's parameters and returns the largest
// |plugin logits - reference logits|.
double difference_from_reference(Model& model, const Values& overrides, const at::Tensor& inputs, const at::Tensor& mask = {},
                                 const at::Tensor& positions = {}) {
  c10::Dict<std::string, at::Tensor> data;
  for (const auto& item : model.named_parameters()) data.insert(item.key(), item.value().detach());
  data.insert("inputs", inputs);
  data.insert("logits", model.forward_with(inputs, {mask, positions, nullptr}).detach());
  if (mask.defined()) data.insert("mask", mask);
  if (positions.defined()) data.insert("positions", positions);
  auto file = (testing::temp_dir("gpt-reference") / "data.pt").string();
  auto bytes = torch::pickle_save(c10::IValue(data));
  std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::string out;
  const std::string script = std::string(ASSAY_SOURCE_DIR) + "/plugins/models/gpt/gpt_reference.py";
  const auto config = json_of(testing::values_of(Kind::model, "gpt", overrides));
  if (testing::shell("python3 " + script + " " + file + " '" + config + "'", &out) != 0) throw std::runtime_error(out);
  return std::stod(out);
}

const std::vector<Values> kConfigs = {
    {},  // GELU, learned positions, LayerNorm, pre-LN, untied head, biases
    {{"activation", std::string("swiglu")}, {"position", std::string("rope")}, {"norm", std::string("rmsnorm")},
     {"qk_norm", true}, {"tied_head", true}, {"bias", false}, {"init", std::string("torch")}, {"mlp_ratio", 8.0 / 3}},
    {{"pre_ln", false}, {"activation", std::string("relu")}, {"norm_bias", false}, {"position", std::string("none")},
     {"layers", int64_t{3}}, {"heads", int64_t{2}}},
    {{"norm_affine", false}, {"position", std::string("rope")}, {"qk_norm", true}, {"width", int64_t{48}}, {"heads", int64_t{3}}},
};

Values small(Values config) {
  if (!config.count("width")) config["width"] = int64_t{32};
  return config;
}

TEST(Gpt, MatchesFloat64ReferenceInEveryConfiguration) {
  for (const auto& config : kConfigs) {
    auto model = gpt(small(config));
    model->to(torch::kDouble);
    EXPECT_LT(difference_from_reference(*model, small(config), tokens(3, 9)), 1e-10) << json_of(config);
  }
}

TEST(Gpt, Float32StaysNearTheReference) {
  auto model = gpt(small(kConfigs[1]));
  EXPECT_LT(difference_from_reference(*model, small(kConfigs[1]), tokens(2, 12)), 1e-4);
}

TEST(Gpt, CustomMaskAndPositionsMatchTheReference) {
  // Two packed sequences per row (lengths 5 and 4): block-diagonal causal mask, positions restarting.
  auto config = small(kConfigs[3]);
  auto model = gpt(config);
  model->to(torch::kDouble);
  auto segment = torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1});
  auto positions = torch::tensor({0, 1, 2, 3, 4, 0, 1, 2, 3}, torch::kLong).expand({2, 9});
  auto mask = (segment.unsqueeze(1) == segment.unsqueeze(0)).logical_and(torch::ones({9, 9}, torch::kBool).tril());
  mask = mask.expand({2, 1, 9, 9});
  EXPECT_LT(difference_from_reference(*model, config, tokens(2, 9), mask, positions), 1e-10);
}

TEST(Gpt, PackedSequencesEqualSeparateForwards) {
  for (const auto& config : {small({}), small(kConfigs[1])}) {
    auto model = gpt(config);
    model->to(torch::kDouble);
    auto a = tokens(1, 5, 3), b = tokens(1, 4, 4);
    auto segment = torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1});
    auto mask = (segment.unsqueeze(1) == segment.unsqueeze(0)).logical_and(torch::ones({9, 9}, torch::kBool).tril());
    auto positions = torch::tensor({0, 1, 2, 3, 4, 0, 1, 2, 3}, torch::kLong).unsqueeze(0);
    auto packed = model->forward_with(torch::cat({a, b}, 1), {mask.view({1, 1, 9, 9}), positions, nullptr});
    auto separate = torch::cat({model->forward(a), model->forward(b)}, 1);
    EXPECT_LT((packed - separate).abs().max().item<double>(), 1e-12);
  }
}

TEST(Gpt, KVCacheGivesTheLogitsOfTheFullSequence) {
  for (const auto& config : {small({}), small(kConfigs[1]), small(kConfigs[2])}) {
    auto model = gpt(config);
    model->to(torch::kDouble);
    model->eval();
    auto x = tokens(2, 12);
    auto full = model->forward(x);
    KVCache cache;
    cache.capacity = 12;
    // Prefill 4, then a chunk of 3 (explicit bottom-right causal mask), then one token at a time.
    std::vector<at::Tensor> parts{model->forward_with(x.slice(1, 0, 4), {{}, {}, &cache}),
                                  model->forward_with(x.slice(1, 4, 7), {{}, {}, &cache})};
    for (int64_t t = 7; t < 12; ++t) parts.push_back(model->forward_with(x.slice(1, t, t + 1), {{}, {}, &cache}));
    EXPECT_EQ(cache.length, 12);
    EXPECT_LT((torch::cat(parts, 1) - full).abs().max().item<double>(), 1e-12) << json_of(config);
    EXPECT_THROW(model->forward_with(x.slice(1, 0, 1), {{}, {}, &cache}), c10::Error);  // over capacity
  }
}

TEST(Gpt, ParameterGroupsCoverEveryParameterOnce) {
  for (const auto& config : kConfigs) {
    auto model = gpt(small(config));
    std::vector<std::string> names;
    size_t count = 0;
    for (const auto& group : model->param_groups()) {
      names.push_back(group.name);
      for (const auto& p : group.params) {
        ++count;
        int64_t found = 0;
        for (const auto& q : model->parameters()) found += q.is_same(p);
        EXPECT_EQ(found, 1);
      }
    }
    EXPECT_EQ(count, model->parameters().size()) << json_of(config);
    EXPECT_EQ(names, (std::vector<std::string>{"embedding", "qkv", "attention_out", "mlp", "norms", "head"}));
  }
  EXPECT_TRUE(gpt(small(kConfigs[1]))->param_groups().back().params.empty());  // tied: the head is the embedding
}

TEST(Gpt, HiddenStatesAreTheResidualStream) {
  auto model = gpt(small({}));
  auto x = tokens(2, 6);
  auto states = model->hidden_states(x, {2, 0});
  ASSERT_EQ(states.size(), 2u);
  auto& gpt_model = *model;
  auto embedding = gpt_model.named_parameters()["token_embedding"].index_select(0, x.reshape({-1})).view({2, 6, 32}) +
                   gpt_model.named_parameters()["position_embedding"].slice(0, 0, 6);
  EXPECT_TRUE(torch::allclose(states[1], embedding));
  // The last layer's state through the final norm and the head gives forward()'s logits.
  auto final_norm = gpt_model.named_parameters();
  auto normed = at::layer_norm(states[0], {32}, final_norm["final_norm.weight"], final_norm["final_norm.bias"], 1e-5);
  EXPECT_TRUE(torch::allclose(torch::matmul(normed, final_norm["head.weight"].t()), model->forward(x), 1e-5, 1e-6));
  EXPECT_THROW(model->hidden_states(x, {3}), std::invalid_argument);
  // Negative layers count from the end: -1 is the last block's output, -3 the embeddings.
  auto from_end = model->hidden_states(x, {-1, -3});
  EXPECT_TRUE(torch::equal(from_end[0], states[0]));
  EXPECT_TRUE(torch::equal(from_end[1], states[1]));
  EXPECT_THROW(model->hidden_states(x, {-4}), std::invalid_argument);
}

TEST(Gpt, DropoutOnlyInTrainingMode) {
  auto model = gpt(small({{"dropout", 0.3}}));
  auto x = tokens(2, 8);
  model->train();
  EXPECT_FALSE(torch::equal(model->forward(x), model->forward(x)));
  model->eval();
  EXPECT_TRUE(torch::equal(model->forward(x), model->forward(x)));
}

TEST(Gpt, EveryParameterGetsAGradient) {
  for (const auto& config : kConfigs) {
    auto model = gpt(small(config));
    auto x = tokens(2, 8);
    model->forward(x).logsumexp(-1).sum().backward();
    for (const auto& p : model->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
  }
}

TEST(Gpt, InitializationFollowsTheOption) {
  auto model = gpt({{"layers", int64_t{4}}, {"width", int64_t{256}}, {"init_std", 0.05}});
  auto p = model->named_parameters();
  EXPECT_NEAR(p["block0.attention.qkv.weight"].std().item<double>(), 0.05, 0.002);
  EXPECT_NEAR(p["block0.mlp.down.weight"].std().item<double>(), 0.05 / std::sqrt(8.0), 0.001);
  EXPECT_EQ(p["block0.attention.qkv.bias"].abs().sum().item<double>(), 0);
  EXPECT_NEAR(gpt({{"init", std::string("torch")}})->named_parameters()["token_embedding"].std().item<double>(), 1.0, 0.1);
}

TEST(Gpt, RejectsInconsistentOptions) {
  EXPECT_THROW(gpt({{"width", int64_t{30}}, {"heads", int64_t{4}}}), std::invalid_argument);
  EXPECT_THROW(gpt({{"width", int64_t{30}}, {"heads", int64_t{10}}, {"position", std::string("rope")}}), std::invalid_argument);
  EXPECT_THROW(gpt({{"tied_head", true}}, 0, {kVocab, 3, kContext}), std::invalid_argument);
  auto model = gpt(small({}));
  EXPECT_THROW(model->forward(tokens(1, kContext + 1)), c10::Error);  // beyond the learned positions
  EXPECT_NO_THROW(gpt(small(kConfigs[1]))->forward(tokens(1, kContext + 1)));  // RoPE has no limit
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

// CPU vs CUDA (the fused attention kernels differ): same logits, with and without the KV cache.
TEST(Gpt, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto& config : kConfigs) {
    auto model = gpt(small(config));
    model->eval();
    auto x = tokens(4, kContext);
    auto cpu = model->forward(x);
    model->to(torch::kCUDA);
    auto cuda = model->forward(x.cuda()).cpu();
    EXPECT_LT((cuda - cpu).abs().max().item<double>(), 1e-4) << json_of(config);
    KVCache cache;
    cache.capacity = kContext;
    std::vector<at::Tensor> parts{model->forward_with(x.slice(1, 0, 9).cuda(), {{}, {}, &cache})};
    for (int64_t t = 9; t < kContext; ++t) parts.push_back(model->forward_with(x.slice(1, t, t + 1).cuda(), {{}, {}, &cache}));
    EXPECT_LT((torch::cat(parts, 1).cpu() - cpu).abs().max().item<double>(), 1e-4) << json_of(config);
  }
}

// Under bf16 autocast the pre-LN norms return bf16 (on CUDA from assay::fused_norm): the loss and every gradient
// are those of the float32 norms followed by the linear layers' own casts (exactly on the CPU, where the path is
// ATen's norm and a cast; on CUDA up to the order of float32 sums).
TEST(Gpt, AutocastNormsGiveTheUnfusedModelsNumbers) {
  const auto device = torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  for (const auto& config : kConfigs) {
    auto model = gpt(small(config));
    model->to(device);
    // gpt sets the option on the pre-LN norms (two per block, one with SwiGLU, and the final one), never on post-LN
    // norms (the residual stream itself) or q/k norms (rotary positions follow them).
    std::vector<NormImpl*> fusable;
    for (const auto& m : model->modules()) {
      if (auto* norm = dynamic_cast<NormImpl*>(m.get()); norm && norm->options.autocast_output) fusable.push_back(norm);
    }
    const bool pre_ln = !config.count("pre_ln") || std::get<bool>(config.at("pre_ln"));
    const int64_t layers = config.count("layers") ? std::get<int64_t>(config.at("layers")) : 2;
    const bool swiglu = config.count("activation") && std::get<std::string>(config.at("activation")) == "swiglu";
    EXPECT_EQ(static_cast<int64_t>(fusable.size()), pre_ln ? (swiglu ? 1 : 2) * layers + 1 : 0) << json_of(config);
    auto x = tokens(4, kContext).to(device), targets = tokens(4, kContext, 2).to(device);
    auto run = [&](bool autocast_output) {
      for (auto* norm : fusable) norm->options.autocast_output = autocast_output;
      model->zero_grad();
      at::Tensor loss;
      {
        AutocastScope scope(device, c10::kBFloat16);
        loss = torch::nn::functional::cross_entropy(model->forward(x).flatten(0, 1).to(torch::kFloat), targets.flatten());
      }
      loss.backward();
      std::vector<at::Tensor> out{loss.detach().clone()};
      for (const auto& p : model->parameters()) out.push_back(p.grad().clone());
      return out;
    };
    auto fused = run(true), plain = run(false);
    for (size_t i = 0; i < fused.size(); ++i) {
      const double scale = plain[i].abs().max().item<double>() + 1e-12;
      const double error = (fused[i] - plain[i]).abs().max().item<double>() / scale;
      if (device == torch::kCPU) EXPECT_EQ(error, 0.0) << json_of(config) << " tensor " << i;
      else EXPECT_LT(error, 2e-2) << json_of(config) << " tensor " << i;
    }
  }
}

}  // namespace
}  // namespace assay
