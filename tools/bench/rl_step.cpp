// RL step throughput of GRPO on solution_tree (the rl-wall recipe's RL step): assay's rollout
// (assay::roll_out: the sampler with its KV cache, then the task's verifier) and update (the grpo plugin's
// loss, backward, gradient clipping, the adamw plugin's step), against the same RL step in plain PyTorch
// (tools/bench/rl_step_python.py) on the same weights, prompts and torch. The rollout is also timed with
// kv_cache = false (the sampler recomputing every sequence each step), on the first step of each round.
// Rounds interleave assay and Python; the table reports medians of per-round ratios.
//   build/bin/bench_rl_step [--device cpu|cuda] [--rounds 3] [--steps 2] [--epochs 1] [--threads N]
//                           [--sft-steps 50] [--uncached 1]
//
// Model: the reference's ~1M-parameter gpt (4 layers, width 128, 2 heads, MLP 512, context = the task's
// prompt + completion length). Before timing, --sft-steps steps of cross-entropy on the task's SFT data
// (torch::optim::AdamW, lr 1e-3) give completions the shape and length of the answers, as at the start of
// the recipe's GRPO stage; those weights are the RL start on both sides, reset at every round.
// GRPO: 32 prompts x 8 completions, temperature 1, clip 0.2, token_mean, advantage_eps 1e-6, grad clip 0.1,
// the adamw plugin (lr 3e-5, weight decay 0.01; implementation auto: torch::optim::AdamW on CPU, fused on
// CUDA); no KL or entropy term (kl_coef = entropy_coef = 0 on both sides).
#include <assay/components.hpp>
#include <assay/rollout.hpp>
#include <assay/sampler.hpp>

#include <ATen/Parallel.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/torch.h>

#include "bench_support.hpp"
#include "registry.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <malloc.h>
#include <map>
#include <sstream>

namespace {

double mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0.0 : sum / static_cast<double>(v.size());
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// grpo binds the context's recorder; the benchmark records nothing.
class NullRecorder : public assay::Recorder {
 public:
  void metric(std::string_view, int64_t, double) override {}
  void append(std::string_view, int64_t, const at::Tensor&) override {}
  void describe(std::string_view, std::string_view, std::string_view) override {}
  void event(int64_t, std::string_view, std::string_view) override {}
};

// A component's defaults with `overrides` applied (what the host does with a recipe table).
assay::Values values_of(const assay::Registry& registry, assay::Kind kind, const std::string& name, const assay::Values& overrides) {
  const auto* component = registry.find(kind, name);
  if (!component) throw std::runtime_error("plugin component '" + name + "' not found (build it: ninja -C build " + name + ")");
  assay::Values values;
  for (const auto& p : component->info.schema) values[p.name] = p.default_value;
  for (const auto& [key, value] : overrides) values[key] = value;
  return values;
}

std::vector<int64_t> row(const at::Tensor& tokens, int64_t i, int64_t length) {
  const int64_t* p = tokens[i].data_ptr<int64_t>();
  return {p, p + length};
}

}  // namespace

int main(int argc, char** argv) {
  // As `assay run` does at start-up (runner.cpp): keep freed activation buffers in the heap.
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  std::map<std::string, std::string> args{{"device", "cpu"}, {"rounds", "3"},  {"steps", "2"},     {"epochs", "1"},
                                          {"threads", "0"},  {"sft-steps", "50"}, {"uncached", "1"}};
  for (int i = 1; i + 1 < argc; i += 2) args[std::string(argv[i]).substr(2)] = argv[i + 1];
  if (std::stoi(args["threads"]) > 0) at::set_num_threads(std::stoi(args["threads"]));
  const c10::Device device(args["device"]);
  const int rounds = std::stoi(args["rounds"]);
  const int64_t steps = std::stoll(args["steps"]), epochs = std::stoll(args["epochs"]), sft_steps = std::stoll(args["sft-steps"]);
  const bool time_uncached = args["uncached"] != "0";
  const int64_t prompts_per_step = 32, group_size = 8, heads = 2;
  const double temperature = 1.0, clip = 0.2, advantage_eps = 1e-6, grad_clip = 0.1, lr = 3e-5, weight_decay = 0.01;

  assay::Registry registry;
  registry.load_directories(assay::Registry::search_path({}));
  NullRecorder recorder;

  assay::Context task_context;
  task_context.device = device;
  auto task = registry.create<assay::Task>("solution_tree", values_of(registry, assay::Kind::task, "solution_tree", {}), task_context);
  const auto format = task->completion_format();
  assay::SamplerOptions sampler_options = assay::completion_options(format);  // what grpo passes to roll_out
  sampler_options.temperature = temperature;

  torch::manual_seed(0);
  assay::Context model_context;
  model_context.device = device;
  model_context.task_shape = task->shape();
  auto model = registry.create<assay::Model>(
      "gpt",
      values_of(registry, assay::Kind::model, "gpt",
                {{"layers", int64_t{4}}, {"width", int64_t{128}}, {"heads", heads}, {"mlp_ratio", 4.0}}),
      model_context);
  model->to(device);
  int64_t parameter_count = 0;
  for (const auto& p : model->parameters()) parameter_count += p.numel();

  // Short SFT so that completions have the answers' lengths: they decide how much of the sampler's work
  // counts as generated tokens.
  if (sft_steps > 0) {
    torch::optim::AdamW sft(model->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
    model->train();
    for (int64_t step = 0; step < sft_steps; ++step) {
      auto batch = task->train_batch(step);
      auto logits = model->forward(batch.inputs);
      auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.targets.reshape({-1}));
      sft.zero_grad();
      loss.backward();
      sft.step();
    }
  }
  std::vector<at::Tensor> start_weights;
  for (const auto& p : model->parameters()) start_weights.push_back(p.detach().clone());

  // The Python side's data: weights, the configuration, and per step (0 = warm-up, 1..steps timed) the
  // prompts with their expected answers (from the train_rl split, whose problems train_prompts draws).
  std::map<std::vector<int64_t>, std::vector<int64_t>> answer_of;
  {
    auto split_prompts = task->eval_prompts("train_rl");
    auto split = task->eval_batch("train_rl");
    auto tokens = split_prompts.tokens.cpu().contiguous(), lengths = split_prompts.lengths.cpu(), targets = split.targets.cpu();
    for (int64_t i = 0; i < tokens.size(0); ++i) {
      auto answer = targets[i].masked_select(targets[i].ne(-100)).contiguous();
      answer_of[row(tokens, i, lengths[i].item<int64_t>())] = row(answer.unsqueeze(0), 0, answer.numel());
    }
  }
  const std::string data = "/tmp/assay-bench-rl-step.pt";
  c10::Dict<std::string, at::Tensor> saved;
  for (const auto& p : model->named_parameters()) saved.insert(p.key(), p.value().detach().cpu());
  auto scalar = [&](const std::string& key, auto value) { saved.insert("config." + key, torch::tensor(value)); };
  scalar("heads", heads);
  scalar("group_size", group_size);
  scalar("max_new_tokens", sampler_options.max_new_tokens);
  scalar("stop_token", format.stop_tokens.at(0));
  scalar("pad_token", format.pad_token);
  scalar("temperature", temperature);
  scalar("clip", clip);
  scalar("advantage_eps", advantage_eps);
  scalar("grad_clip", grad_clip);
  scalar("lr", lr);
  scalar("weight_decay", weight_decay);
  scalar("epochs", epochs);
  scalar("steps", steps);
  std::vector<assay::PromptBatch> step_prompts;
  for (int64_t step = 0; step <= steps; ++step) {
    auto prompts = task->train_prompts(step, prompts_per_step);
    step_prompts.push_back(prompts);
    auto tokens = prompts.tokens.cpu().contiguous(), lengths = prompts.lengths.cpu();
    auto answers = torch::full({prompts_per_step, format.max_new_tokens}, -1, torch::kLong);
    auto answer_lengths = torch::zeros({prompts_per_step}, torch::kLong);
    for (int64_t i = 0; i < prompts_per_step; ++i) {
      const auto prompt = row(tokens, i, lengths[i].item<int64_t>());
      const auto found = answer_of.find(prompt);
      if (found == answer_of.end() || !task->score(prompt, found->second).correct) {
        std::fprintf(stderr, "no verified answer for prompt %lld of step %lld\n", static_cast<long long>(i), static_cast<long long>(step));
        return 1;
      }
      const auto& answer = found->second;
      answers[i].narrow(0, 0, static_cast<int64_t>(answer.size())).copy_(torch::tensor(answer, torch::kLong));
      answer_lengths[i] = static_cast<int64_t>(answer.size());
    }
    const std::string s = std::to_string(step);
    saved.insert("prompts." + s, tokens);
    saved.insert("prompt_lengths." + s, lengths);
    saved.insert("answers." + s, answers);
    saved.insert("answer_lengths." + s, answer_lengths);
  }
  {
    // A check of the Python generation loop (left padding, masks, cache): greedy completions of step 0's
    // prompts, which the Python side must reproduce.
    auto options = sampler_options;
    options.greedy = true;
    auto greedy = assay::sample(*model, step_prompts[0].tokens, step_prompts[0].lengths, options, 0);
    saved.insert("check.greedy_tokens", greedy.tokens.cpu());
    saved.insert("check.greedy_lengths", greedy.lengths.cpu());
  }
  auto bytes = torch::pickle_save(c10::IValue(saved));
  std::ofstream(data, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  std::printf("device %s, solution_tree defaults, gpt 4 x 128, 2 heads, MLP 512 (%lld parameters), %lld SFT steps, "
              "%lld prompts x %lld completions, max %lld new tokens, %lld update(s) per rollout, %d threads, %d rounds x %lld steps\n",
              args["device"].c_str(), static_cast<long long>(parameter_count), static_cast<long long>(sft_steps),
              static_cast<long long>(prompts_per_step), static_cast<long long>(group_size),
              static_cast<long long>(sampler_options.max_new_tokens), static_cast<long long>(epochs), at::get_num_threads(), rounds,
              static_cast<long long>(steps));

  std::vector<double> cached_rate, uncached_rate, rollout_ms, score_ms, update_ms, lengths_assay;
  std::vector<double> python_rate, python_rollout_ms, python_update_ms, lengths_python;
  std::array<std::vector<double>, 3> phase_ms, python_phase_ms;  // update: loss, backward, clip + optimizer step
  std::vector<double> rate_ratio, cache_ratio, update_ratio, step_ratio;
  std::string greedy_agreement;
  auto parameters = model->parameters();
  for (int round = 0; round < rounds; ++round) {
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < parameters.size(); ++i) parameters[i].copy_(start_weights[i]);
    }
    assay::Context context;
    context.seed = static_cast<uint64_t>(round);
    context.device = device;
    context.task_shape = task->shape();
    context.task = task.get();
    context.model = model.get();
    context.recorder = &recorder;
    auto optimizer = registry.create<assay::Optimizer>(
        "adamw", values_of(registry, assay::Kind::optimizer, "adamw", {{"lr", lr}, {"weight_decay", weight_decay}}), context);
    context.optimizer = optimizer.get();
    // grpo rolls out inside loss() at the first step of every `epochs` steps. Its update cannot be timed apart
    // from that rollout, so it gets an epoch count no run reaches: it rolls out once, at the warm-up step, and
    // every later loss() call is the update alone (on that rollout: the same shapes and work as any step's).
    auto grpo = registry.create<assay::Algorithm>(
        "grpo",
        values_of(registry, assay::Kind::algorithm, "grpo",
                  {{"prompts_per_step", prompts_per_step}, {"group_size", group_size}, {"epochs", int64_t{1} << 40},
                   {"temperature", temperature}, {"clip", clip}, {"loss_aggregation", std::string("token_mean")},
                   {"advantage_eps", advantage_eps}, {"kl_coef", 0.0}, {"entropy_coef", 0.0}}),
        context);
    int64_t grpo_step = 1;
    // What the host's train_step does around loss(); returns the seconds of (loss, backward, clip + step),
    // synchronized between them (the update's phases, reported beside its total).
    auto update = [&] {
      std::array<double, 3> phases{};
      synchronize(device);
      auto start = std::chrono::steady_clock::now();
      for (auto& p : parameters) p.mutable_grad().reset();
      auto out = grpo->loss(grpo_step++, 0, 1);
      synchronize(device);
      phases[0] = seconds_since(start);
      start = std::chrono::steady_clock::now();
      out.loss.backward();
      synchronize(device);
      phases[1] = seconds_since(start);
      start = std::chrono::steady_clock::now();
      torch::nn::utils::clip_grad_norm_(parameters, grad_clip);
      optimizer->step();
      synchronize(device);
      phases[2] = seconds_since(start);
      return phases;
    };
    update();  // warm-up: grpo's rollout and a first update
    if (round == 0) assay::roll_out(*task, *model, step_prompts[0], group_size, sampler_options, 0);  // warm-up

    std::vector<double> round_rate, round_uncached, round_update, round_step;
    for (int64_t step = 1; step <= steps; ++step) {
      const auto seed = static_cast<uint64_t>(round) * 1000 + static_cast<uint64_t>(step);
      synchronize(device);
      auto start = std::chrono::steady_clock::now();
      auto rollout = assay::roll_out(*task, *model, step_prompts[static_cast<size_t>(step)], group_size, sampler_options, seed);
      synchronize(device);
      const double rollout_s = seconds_since(start);
      const double tokens = rollout.samples.lengths.sum().item<double>();
      round_rate.push_back(tokens / rollout_s);
      rollout_ms.push_back(1e3 * rollout_s);
      lengths_assay.push_back(tokens / static_cast<double>(rollout.samples.lengths.numel()));

      // The verifier's share of the rollout: roll_out's scoring loop again.
      {
        auto prompt_tokens = rollout.prompts.tokens.cpu().contiguous(), prompt_lengths = rollout.prompts.lengths.cpu();
        auto generated = rollout.samples.tokens.cpu().contiguous(), generated_lengths = rollout.samples.lengths.cpu();
        auto scoring_start = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < generated.size(0); ++i) {
          const int64_t p = i / group_size;
          task->score(row(prompt_tokens, p, prompt_lengths[p].item<int64_t>()), row(generated, i, generated_lengths[i].item<int64_t>()));
        }
        score_ms.push_back(1e3 * seconds_since(scoring_start));
      }

      if (time_uncached && step == 1) {  // once per round: it costs ~20 cached rollouts
        auto options = sampler_options;
        options.kv_cache = false;
        synchronize(device);
        start = std::chrono::steady_clock::now();
        auto recomputed = assay::roll_out(*task, *model, step_prompts[static_cast<size_t>(step)], group_size, options, seed);
        synchronize(device);
        round_uncached.push_back(tokens / seconds_since(start));
        if (!torch::equal(recomputed.samples.tokens.cpu(), rollout.samples.tokens.cpu())) {
          std::fprintf(stderr, "warning: the cached and uncached rollouts of step %lld differ\n", static_cast<long long>(step));
        }
      }

      double update_s = 0;
      std::array<double, 3> phases{};
      for (int64_t e = 0; e < epochs; ++e) {
        const auto epoch_phases = update();
        for (size_t k = 0; k < phases.size(); ++k) {
          phases[k] += epoch_phases[k];
          update_s += epoch_phases[k];
        }
      }
      for (size_t k = 0; k < phases.size(); ++k) phase_ms[k].push_back(1e3 * phases[k] / static_cast<double>(epochs));
      round_update.push_back(1e3 * update_s / static_cast<double>(epochs));
      round_step.push_back(rollout_s + update_s);
    }

    // The Python side: a warm-up step, then the same steps' prompts. Output: rollout tok/s, rollout ms,
    // update ms, mean completion length, RL step s, greedy-check agreement, the update's three phases in ms.
    const std::string command = "python3 " + std::string(ASSAY_SOURCE_DIR) + "/tools/bench/rl_step_python.py " + data + " " +
                                args["device"] + " " + std::to_string(at::get_num_threads());
    FILE* pipe = popen(command.c_str(), "r");
    char line[512] = {0};
    std::string out;
    while (pipe && std::fgets(line, sizeof line, pipe)) out += line;
    if (!pipe || pclose(pipe) != 0) {
      std::fprintf(stderr, "python side failed: %s\n", out.c_str());
      return 1;
    }
    std::stringstream in(out);
    double p_rate = 0, p_rollout = 0, p_update = 0, p_length = 0, p_step = 0;
    std::array<double, 3> p_phases{};
    in >> p_rate >> p_rollout >> p_update >> p_length >> p_step >> greedy_agreement >> p_phases[0] >> p_phases[1] >> p_phases[2];
    if (!in) {
      std::fprintf(stderr, "unexpected output of the python side: %s\n", out.c_str());
      return 1;
    }

    const double a_rate = bench::median(round_rate), a_update = bench::median(round_update), a_step = bench::median(round_step);
    cached_rate.push_back(a_rate);
    update_ms.push_back(a_update);
    python_rate.push_back(p_rate);
    python_rollout_ms.push_back(p_rollout);
    for (size_t k = 0; k < p_phases.size(); ++k) python_phase_ms[k].push_back(p_phases[k]);
    python_update_ms.push_back(p_update);
    lengths_python.push_back(p_length);
    rate_ratio.push_back(a_rate / p_rate);
    update_ratio.push_back(p_update / a_update);
    step_ratio.push_back(p_step / a_step);
    if (time_uncached) {
      uncached_rate.push_back(bench::median(round_uncached));
      cache_ratio.push_back(a_rate / bench::median(round_uncached));
    }
    std::fprintf(stderr, "round %d: assay %.0f tok/s (uncached %.0f), update %.1f ms, step %.3f s | Python %.0f tok/s, update %.1f ms, step %.3f s\n",
                 round, a_rate, time_uncached ? bench::median(round_uncached) : 0.0, a_update, a_step, p_rate, p_update, p_step);
  }

  std::printf("\n| | assay | Python | assay speed / Python speed |\n|---|---:|---:|---:|\n");
  std::printf("| rollout tok/s, KV cache | %.0f | %.0f | **%.2f** |\n", bench::median(cached_rate), bench::median(python_rate), bench::median(rate_ratio));
  if (time_uncached) {
    std::printf("| rollout tok/s, recomputed (kv_cache = false) | %.0f | | cached / uncached %.2f |\n", bench::median(uncached_rate),
                bench::median(cache_ratio));
  }
  std::printf("| update ms (loss, backward, clip, AdamW) | %.1f | %.1f | **%.2f** |\n", bench::median(update_ms), bench::median(python_update_ms),
              bench::median(update_ratio));
  const char* phase_names[] = {"loss (forward)", "backward", "clip + AdamW step"};
  for (size_t k = 0; k < phase_ms.size(); ++k) {
    std::printf("| - %s ms | %.1f | %.1f | |\n", phase_names[k], bench::median(phase_ms[k]), bench::median(python_phase_ms[k]));
  }
  std::printf("| RL step (rollout + %lld update%s) | | | **%.2f** |\n", static_cast<long long>(epochs), epochs > 1 ? "s" : "",
              bench::median(step_ratio));
  std::printf("| mean completion length (tokens) | %.1f | %.1f | |\n", mean(lengths_assay), mean(lengths_python));
  std::printf("| rollout ms | %.1f | %.1f | |\n", bench::median(rollout_ms), bench::median(python_rollout_ms));
  std::printf("| of which the verifier (256 score calls), ms | %.2f | | |\n", bench::median(score_ms));
  std::printf("\nPython greedy check: %s of step 0's greedy completions identical to assay's sampler\n", greedy_agreement.c_str());
  return 0;
}
