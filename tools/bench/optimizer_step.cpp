// Optimizer step time on the parameter set of a 4-layer d=256 GPT (embedding, fused QKV, attention
// out, MLP, norms, head: 3.4M parameters), every optimizer plugin vs `adamw`, and `adamw` vs LibTorch's
// own C++ AdamW. Rounds interleave the optimizers; the table reports medians of per-round ratios.
//   build/bin/bench_optimizer_step [rounds] [steps per round] [threads]
#include <assay/components.hpp>

#include <ATen/Parallel.h>
#include <torch/optim/adamw.h>
#include <torch/torch.h>

#include "bench_support.hpp"
#include "registry.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

namespace {

class GptShapes : public assay::Model {
 public:
  GptShapes() {
    const int64_t d = 256, vocab = 256, layers = 4;
    auto add = [&](const std::string& group, const std::string& name, std::vector<int64_t> shape) {
      groups_[group].push_back(register_parameter(name, torch::randn(shape) * 0.02));
    };
    add("embedding", "embed", {vocab, d});
    for (int64_t l = 0; l < layers; ++l) {
      const std::string p = "l" + std::to_string(l) + "_";
      add("qkv", p + "qkv", {3 * d, d});
      add("attention", p + "out", {d, d});
      add("mlp", p + "up", {4 * d, d});
      add("mlp", p + "down", {d, 4 * d});
      add("norms", p + "ln1", {d});
      add("norms", p + "ln2", {d});
    }
    add("norms", "ln_f", {d});
    add("head", "head", {vocab, d});
  }
  at::Tensor forward(const at::Tensor& x) override { return x; }
  std::vector<assay::ParamGroup> param_groups() override {
    std::vector<assay::ParamGroup> out;
    for (const char* name : {"embedding", "qkv", "attention", "mlp", "norms", "head"}) out.push_back({name, groups_[name]});
    return out;
  }

 private:
  std::map<std::string, std::vector<at::Tensor>> groups_;
};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 20;
  at::set_num_threads(argc > 3 ? std::atoi(argv[3]) : 1);
  torch::manual_seed(0);
  assay::Registry registry;
  registry.load_directories(assay::Registry::search_path({}));

  const std::vector<std::string> names = {"adamw", "sgd", "lion", "signum", "adafactor", "adalayer", "shampoo", "soap"};
  std::map<std::string, std::vector<double>> ms;  // per round: mean ms per step
  std::map<std::string, std::vector<double>> ratio;
  int64_t parameters = 0;
  for (int round = 0; round < rounds; ++round) {
    std::map<std::string, double> this_round;
    auto time_steps = [&](auto&& step, assay::Model& model) {
      for (auto& p : model.parameters()) p.mutable_grad() = torch::randn_like(p);
      step();  // warm-up (and SOAP's first, update-free call)
      auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < steps; ++i) step();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / steps;
    };
    for (const auto& name : names) {
      auto model = std::make_shared<GptShapes>();
      parameters = 0;
      for (auto& p : model->parameters()) parameters += p.numel();
      assay::Context context;
      context.model = model.get();
      assay::Values values;
      for (const auto& p : registry.find(assay::Kind::optimizer, name)->info.schema) values[p.name] = p.default_value;
      auto optimizer = registry.create<assay::Optimizer>(name, values, context);
      this_round[name] = time_steps([&] { optimizer->step(); }, *model);
    }
    {
      auto model = std::make_shared<GptShapes>();
      torch::optim::AdamW torch_adamw(model->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
      this_round["torch::optim::AdamW"] = time_steps([&] { torch_adamw.step(); }, *model);
    }
    for (const auto& [name, value] : this_round) {
      ms[name].push_back(value);
      ratio[name].push_back(value / this_round["adamw"]);
    }
  }
  std::printf("%lld parameters (4-layer d=256 GPT shapes), %d threads, %d rounds x %d steps\n\n",
              static_cast<long long>(parameters), at::get_num_threads(), rounds, steps);
  std::printf("| optimizer (defaults) | ms/step (median) | / adamw (median of rounds) |\n|---|---:|---:|\n");
  for (const auto& [name, values] : ms) std::printf("| %s | %.3f | %.2f |\n", name.c_str(), bench::median(values), bench::median(ratio[name]));
  return 0;
}
