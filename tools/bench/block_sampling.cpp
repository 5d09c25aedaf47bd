// Strided block-parallel sampling (assay::sample_blocks, the EBFT rollouts) vs generating the B blocks one
// after another (assay::sample_blocks_one_by_one: B sampler calls, each block from its own context), same
// model, sequences, n and G, for a growing number of blocks B (the sequence length L = C + G + (B - 1) s).
// Rounds interleave the two; the table reports medians of per-round ratios. A second table times ebft's
// feature extraction (hidden states of every (rollout, block)) batched over all rollouts vs per rollout.
//   build/bin/bench_block_sampling [--device cpu|cuda] [--rounds 3] [--sequences 16] [--rollouts 4]
//                                  [--blocks 1,2,4,7,14] [--stride 8] [--context 8] [--length 8]
//                                  [--layers 4] [--width 128] [--threads N]
#include <assay/block_sampling.hpp>
#include <assay/components.hpp>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "bench_support.hpp"
#include "registry.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>

int main(int argc, char** argv) {
  std::map<std::string, std::string> args{{"device", "cpu"}, {"rounds", "3"}, {"sequences", "16"}, {"rollouts", "4"},
                                          {"blocks", "1,2,4,7,14"}, {"stride", "8"}, {"context", "8"}, {"length", "8"},
                                          {"layers", "4"}, {"width", "128"}, {"threads", "0"}};
  for (int i = 1; i + 1 < argc; i += 2) args[std::string(argv[i]).substr(2)] = argv[i + 1];
  if (std::stoi(args["threads"]) > 0) at::set_num_threads(std::stoi(args["threads"]));
  const c10::Device device(args["device"]);
  const assay::BlockLayout layout{std::stoll(args["stride"]), std::stoll(args["context"]), std::stoll(args["length"])};
  const auto block_counts = bench::parse_list(args["blocks"]);
  const int64_t sequences = std::stoll(args["sequences"]), rollouts = std::stoll(args["rollouts"]), vocab = 256;
  const int rounds = std::stoi(args["rounds"]);
  const int64_t longest = layout.context + layout.length + (*std::max_element(block_counts.begin(), block_counts.end()) - 1) * layout.stride;

  assay::Registry registry;
  registry.load_directories(assay::Registry::search_path({}));
  assay::Context context;
  context.task_shape = {vocab, vocab, longest};
  torch::manual_seed(0);
  assay::Values values;
  for (const auto& p : registry.find(assay::Kind::model, "gpt")->info.schema) values[p.name] = p.default_value;
  values["layers"] = int64_t{std::stoll(args["layers"])};
  values["width"] = int64_t{std::stoll(args["width"])};
  auto model = registry.create<assay::Model>("gpt", values, context);
  model->to(device);
  auto sync = [&] { if (device.is_cuda()) torch::cuda::synchronize(); };

  std::printf("device %s, %lld sequences x %lld rollouts, s=%lld C=%lld G=%lld, gpt %s x %s, %d threads, %d rounds\n",
              args["device"].c_str(), static_cast<long long>(sequences), static_cast<long long>(rollouts),
              static_cast<long long>(layout.stride), static_cast<long long>(layout.context), static_cast<long long>(layout.length),
              args["layers"].c_str(), args["width"].c_str(), at::get_num_threads(), rounds);
  std::printf("\n| B | L | block-parallel rollouts/s | one block at a time rollouts/s | **speed-up** | B / 2 | same tokens (greedy) |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---|\n");
  for (auto B : block_counts) {
    const int64_t L = layout.context + layout.length + (B - 1) * layout.stride;
    auto x = torch::randint(vocab, {sequences, L}, torch::kLong).to(device);
    assay::SamplerOptions options;  // temperature 1
    std::vector<double> parallel, one_by_one, speedup;
    auto time = [&](bool blockwise) {
      sync();
      auto start = std::chrono::steady_clock::now();
      if (blockwise) assay::sample_blocks(*model, x, layout, rollouts, options, 0);
      else assay::sample_blocks_one_by_one(*model, x, layout, rollouts, options, 0);
      sync();
      // A rollout = one block's G tokens for one (sequence, rollout) pair.
      return static_cast<double>(sequences * rollouts * B) / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    time(true);
    time(false);  // warm-up
    for (int round = 0; round < rounds; ++round) {
      const double p = time(true), o = time(false);
      parallel.push_back(p);
      one_by_one.push_back(o);
      speedup.push_back(p / o);
    }
    assay::SamplerOptions greedy;
    greedy.greedy = true;
    const bool same = torch::equal(assay::sample_blocks(*model, x, layout, 1, greedy, 0).tokens,
                                   assay::sample_blocks_one_by_one(*model, x, layout, 1, greedy, 0).tokens);
    std::printf("| %lld | %lld | %.0f | %.0f | **%.2f** | %.1f | %s |\n", static_cast<long long>(B), static_cast<long long>(L),
                bench::median(parallel), bench::median(one_by_one), bench::median(speedup), static_cast<double>(B) / 2, same ? "yes" : "NO");
    std::fflush(stdout);
  }

  // Feature extraction as ebft does it: every (rollout, block) as its own causal sequence (context, then
  // the block's G tokens), hidden states of the frozen network; all rollouts in one batched forward vs one
  // forward per rollout (its B blocks).
  std::printf("\n| B | rollouts x blocks | batched ms | one rollout at a time ms | per rollout, batched us | **speed-up** |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  for (auto B : block_counts) {
    const int64_t N = sequences * rollouts, longest = layout.start(B - 1) + layout.length;
    auto blocks = torch::randint(vocab, {N * B, longest}, torch::kLong).to(device);
    torch::NoGradGuard no_grad;
    auto time = [&](bool batched) {
      sync();
      auto start = std::chrono::steady_clock::now();
      if (batched) model->hidden_states(blocks, {-1});
      else for (int64_t r = 0; r < N; ++r) model->hidden_states(blocks.narrow(0, r * B, B), {-1});
      sync();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    };
    time(true);
    time(false);  // warm-up
    std::vector<double> batched, one_by_one, speedup;
    for (int round = 0; round < rounds; ++round) {
      const double b = time(true), o = time(false);
      batched.push_back(b);
      one_by_one.push_back(o);
      speedup.push_back(o / b);
    }
    std::printf("| %lld | %lld | %.2f | %.2f | %.1f | **%.2f** |\n", static_cast<long long>(B), static_cast<long long>(N * B),
                bench::median(batched), bench::median(one_by_one), 1000 * bench::median(batched) / static_cast<double>(N),
                bench::median(speedup));
    std::fflush(stdout);
  }
  return 0;
}
