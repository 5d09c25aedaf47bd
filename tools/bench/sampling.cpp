// Sampling throughput: assay's sampler with the KV cache vs recomputing the whole sequence every step,
// and vs a Python generation loop (tools/bench/sampling_python.py) on the same weights and torch.
// Greedy decoding, so all three must produce the same tokens (the agreement is printed as a check).
// Rounds interleave the three; the table reports medians of per-round ratios.
//   build/bin/bench_sampling [--device cpu|cuda] [--rounds 3] [--batch 8] [--prompt 16]
//                            [--new 32,128,256] [--layers 4] [--width 128] [--threads N]
#include <assay/components.hpp>
#include <assay/sampler.hpp>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "bench_support.hpp"
#include "registry.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace {

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args{{"device", "cpu"}, {"rounds", "3"}, {"batch", "8"}, {"prompt", "16"},
                                          {"new", "32,128,256"}, {"layers", "4"}, {"width", "128"}, {"threads", "0"}};
  for (int i = 1; i + 1 < argc; i += 2) args[std::string(argv[i]).substr(2)] = argv[i + 1];
  if (std::stoi(args["threads"]) > 0) at::set_num_threads(std::stoi(args["threads"]));
  const c10::Device device(args["device"]);
  const int64_t batch = std::stoll(args["batch"]), prompt = std::stoll(args["prompt"]), vocab = 256;
  const auto new_tokens = bench::parse_list(args["new"]);
  const int rounds = std::stoi(args["rounds"]);
  const int64_t context = prompt + *std::max_element(new_tokens.begin(), new_tokens.end());

  assay::Registry registry;
  registry.load_directories(assay::Registry::search_path({}));
  assay::Context context_of_model;
  context_of_model.task_shape = {vocab, vocab, context};
  torch::manual_seed(0);
  assay::Values values;
  for (const auto& p : registry.find(assay::Kind::model, "gpt")->info.schema) values[p.name] = p.default_value;
  values["layers"] = int64_t{std::stoll(args["layers"])};
  values["width"] = int64_t{std::stoll(args["width"])};
  auto model = registry.create<assay::Model>("gpt", values, context_of_model);
  model->to(device);

  // The weights and prompts for the Python side.
  const std::string data = "/tmp/assay-bench-sampling.pt";
  c10::Dict<std::string, at::Tensor> saved;
  for (const auto& p : model->named_parameters()) saved.insert(p.key(), p.value().detach().cpu());
  auto prompts = torch::randint(vocab, {batch, prompt}, torch::kLong);
  saved.insert("prompts", prompts);
  auto bytes = torch::pickle_save(c10::IValue(saved));
  std::ofstream(data, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  prompts = prompts.to(device);

  std::printf("device %s, batch %lld, prompt %lld, gpt %s layers x width %s (%lld parameters), %d threads, %d rounds\n",
              args["device"].c_str(), static_cast<long long>(batch), static_cast<long long>(prompt), args["layers"].c_str(),
              args["width"].c_str(), static_cast<long long>([&] { int64_t n = 0; for (auto& p : model->parameters()) n += p.numel(); return n; }()),
              at::get_num_threads(), rounds);
  std::printf("\n| new tokens | cached tok/s | uncached tok/s | Python (cached) tok/s | cached / uncached | assay / Python | same tokens |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---|\n");
  for (auto n : new_tokens) {
    assay::SamplerOptions options;
    options.max_new_tokens = n;
    options.greedy = true;
    std::vector<double> cached, uncached, python, speedup, vs_python;
    bool same = true;
    for (int round = 0; round < rounds; ++round) {
      auto time = [&](bool kv_cache, at::Tensor* tokens) {
        options.kv_cache = kv_cache;
        synchronize(device);
        auto start = std::chrono::steady_clock::now();
        auto s = assay::sample(*model, prompts, {}, options, 0);
        synchronize(device);
        *tokens = s.tokens.cpu();
        return static_cast<double>(batch * n) / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      };
      at::Tensor a, b;
      if (round == 0) time(true, &a);  // warm-up
      const double c = time(true, &a), u = time(false, &b);
      const std::string command = "python3 " + std::string(ASSAY_SOURCE_DIR) + "/tools/bench/sampling_python.py " + data + " " +
                                  std::to_string(n) + " " + args["device"] + " " + std::to_string(at::get_num_threads()) + " " +
                                  args["layers"];
      FILE* pipe = popen(command.c_str(), "r");
      char line[256] = {0};
      std::string out;
      while (pipe && std::fgets(line, sizeof line, pipe)) out += line;
      if (!pipe || pclose(pipe) != 0) {
        std::fprintf(stderr, "python side failed: %s\n", out.c_str());
        return 1;
      }
      // Output: tokens/s, then the generated tokens of the first sequence.
      std::stringstream in(out);
      double p = 0;
      in >> p;
      std::vector<int64_t> first;
      for (int64_t t; in >> t;) first.push_back(t);
      same = same && torch::equal(a, b) && torch::equal(a[0], torch::tensor(first, torch::kLong));
      cached.push_back(c);
      uncached.push_back(u);
      python.push_back(p);
      speedup.push_back(c / u);
      vs_python.push_back(c / p);
    }
    std::printf("| %lld | %.0f | %.0f | %.0f | %.2f | %.2f | %s |\n", static_cast<long long>(n), bench::median(cached), bench::median(uncached),
                bench::median(python), bench::median(speedup), bench::median(vs_python), same ? "yes" : "NO");
    std::fflush(stdout);
  }
  return 0;
}
