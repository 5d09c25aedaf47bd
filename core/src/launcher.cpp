// `assay sweep`, `assay run --sweep --index`, `assay status`: sweeps on a local process pool.
#include "commands.hpp"
#include "recipe.hpp"
#include "registry.hpp"
#include "stop_signals.hpp"
#include "store.hpp"
#include "sweep.hpp"

#include <assay/log.hpp>

#include <toml++/toml.h>
#include <torch/cuda.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

namespace fs = std::filesystem;

namespace assay {
namespace {

std::atomic<int> g_sweep_signal{0};
void on_sweep_signal(int signal) { g_sweep_signal = signal; }

std::string sweep_dir_of(const std::string& out, const SweepPlan& plan) {
  return out.empty() ? (fs::path("runs") / (plan.name + "-sweep")).string() : out;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : " ") + i;
  return out;
}

std::optional<SweepPlan> plan_or_report(const std::string& recipe, const std::vector<std::string>& overrides,
                                        const Registry& registry) {
  try {
    return expand_sweep(recipe, overrides, registry);
  } catch (const RecipeError& e) {
    for (const auto& p : e.problems) std::cerr << p << "\n";
    return std::nullopt;
  }
}

/// The run's status from its store: "" when it has none yet.
std::string status_of(const fs::path& run_dir) {
  const fs::path store = run_dir / "run.h5";
  if (!fs::exists(store)) return "";
  try {
    return read_store_attribute(store.string(), "status");
  } catch (const std::exception&) {
    return "unreadable";
  }
}

void write_manifest(const fs::path& dir, const SweepRequest& request, const SweepPlan& plan) {
  toml::table manifest{{"recipe", fs::absolute(request.recipe).string()}, {"mode", plan.mode}};
  toml::array overrides;
  for (const auto& o : request.overrides) overrides.push_back(o);
  manifest.insert("overrides", std::move(overrides));
  toml::array runs;
  for (const auto& run : plan.runs) {
    toml::array items;
    for (const auto& o : run.overrides) items.push_back(o);
    runs.push_back(toml::table{{"index", run.index}, {"id", run.id}, {"overrides", std::move(items)}});
  }
  manifest.insert("runs", std::move(runs));
  fs::create_directories(dir);
  std::ofstream(dir / "sweep.toml") << "# Written by `assay sweep`; `assay status " << dir.string() << "` reads it.\n"
                                    << manifest << "\n";
}

/// "a b" -> "'a b'" for a shell script.
std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string capture(const std::string& command, int* code) {
  std::string output;
  if (FILE* pipe = popen((command + " 2>&1").c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
    const int status = pclose(pipe);
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  } else {
    *code = -1;
  }
  return output;
}

/// One `sbatch --array` job whose task I runs `assay run --sweep RECIPE --index I`.
int submit_slurm(const SweepRequest& request, const SweepPlan& plan, const fs::path& dir) {
  const fs::path slurm = fs::absolute(dir) / "slurm";
  fs::create_directories(slurm);
  const fs::path script = slurm / "array.sh";
  {
    std::ofstream out(script);
    out << "#!/bin/bash\n"
        << "#SBATCH --job-name=assay-" << plan.name << "\n"
        << "#SBATCH --array=0-" << plan.runs.size() - 1 << "%" << std::max(1, request.jobs) << "\n"
        << "#SBATCH --output=" << (slurm / "%A_%a.out").string() << "\n"
        << "#SBATCH --open-mode=append\n"
        << "#SBATCH --requeue\n"
        // To the batch shell, which exec's assay: it checkpoints and requeues itself (runner.cpp).
        << "#SBATCH --signal=B:USR1@" << request.signal_seconds << "\n";
    for (const auto& arg : request.slurm_args) out << "#SBATCH " << arg << "\n";
    out << "# Written by `assay sweep --launcher slurm`: each task runs one run of the sweep; finished runs\n"
        << "# exit at once, interrupted ones resume from their newest checkpoint.\n"
        << "exec " << shell_quote(fs::read_symlink("/proc/self/exe").string()) << " run --sweep "
        << shell_quote(fs::absolute(request.recipe).string()) << " --index \"$SLURM_ARRAY_TASK_ID\" --out "
        << shell_quote(fs::absolute(dir).string());
    for (const auto& d : request.plugin_dirs) out << " --plugins " << shell_quote(fs::absolute(d).string());
    for (const auto& o : request.overrides) out << " " << shell_quote(o);
    const bool threads_given = std::any_of(request.overrides.begin(), request.overrides.end(),
                                           [](const std::string& o) { return o.rfind("run.threads=", 0) == 0; });
    if (!threads_given) out << " run.threads=\"${SLURM_CPUS_PER_TASK:-1}\"";
    out << "\n";
  }
  int code = 0;
  std::string output = capture("sbatch --parsable " + shell_quote(script.string()), &code);
  if (code != 0) {
    std::cerr << "sbatch failed (exit " << code << "): " << output;
    return kExitFailed;
  }
  const std::string job = output.substr(0, output.find_first_of(";\n"));
  std::ofstream(slurm / "jobs", std::ios::app) << job << "\n";
  log::info("submitted Slurm array job ", job, " (", plan.runs.size(), " tasks, ", std::max(1, request.jobs),
            " at a time): ", script.string(), "; follow it with: assay status ", dir.string());
  if (!request.wait) return kExitOk;
  // squeue rather than sbatch --wait, which backs off to 32 s polls.
  for (;;) {
    std::string queued = capture("squeue -h -r -j " + job + " -o %i", &code);
    if (code != 0 || queued.find_first_not_of(" \n") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  status_command(dir.string());
  for (const auto& run : plan.runs) {
    const std::string status = status_of(dir / run.id);
    if (status != "done" && status != "diverged") return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

int sweep_index_command(const RunRequest& request, int64_t index) {
  Registry registry;
  try {
    registry.load_directories(Registry::search_path(request.plugin_dirs));
  } catch (const PluginError& e) {
    log::error(e.what());
    return kExitPluginError;
  }
  auto plan = plan_or_report(request.recipe, request.overrides, registry);
  if (!plan) return kExitBadInput;
  if (index < 0 || index >= static_cast<int64_t>(plan->runs.size())) {
    std::cerr << "--index " << index << ": the sweep has runs 0.." << plan->runs.size() - 1 << "\n";
    return kExitBadInput;
  }
  const SweepRun& run = plan->runs[static_cast<size_t>(index)];
  const fs::path run_dir = fs::path(sweep_dir_of(request.out, *plan)) / run.id;
  const std::string status = status_of(run_dir);
  if (status == "done" || status == "diverged") {
    log::info("run ", index, " (", run.id, ") already ", status);
    return status == "done" ? kExitOk : kExitDiverged;
  }
  RunRequest one = request;
  one.overrides = run.overrides;
  one.overrides.insert(one.overrides.end(), request.overrides.begin(), request.overrides.end());
  one.out = run_dir.string();
  one.resume = !status.empty();
  one.in_sweep = true;
  return run_command(one);
}

int sweep_command(const SweepRequest& request) {
  Registry registry;
  try {
    registry.load_directories(Registry::search_path(request.plugin_dirs));
  } catch (const PluginError& e) {
    log::error(e.what());
    return kExitPluginError;
  }
  auto plan = plan_or_report(request.recipe, request.overrides, registry);
  if (!plan) return kExitBadInput;
  // Every run's recipe is validated before anything runs.
  size_t invalid = 0;
  for (const auto& run : plan->runs) {
    std::vector<std::string> overrides = run.overrides;
    overrides.insert(overrides.end(), request.overrides.begin(), request.overrides.end());
    try {
      load_recipe(request.recipe, overrides, registry);
    } catch (const RecipeError& e) {
      if (invalid++ == 0) {
        std::cerr << "run " << run.index << " (" << joined(run.overrides) << "):\n";
        for (const auto& p : e.problems) std::cerr << "  " << p << "\n";
      }
    }
  }
  if (invalid) {
    std::cerr << invalid << " of " << plan->runs.size() << " runs have an invalid recipe; nothing ran\n";
    return kExitBadInput;
  }
  const fs::path dir = sweep_dir_of(request.out, *plan);
  if (request.dry_run) {
    std::cout << plan->runs.size() << " runs (" << plan->mode << ") in " << dir.string() << "\n";
    for (const auto& run : plan->runs) {
      const std::string status = status_of(dir / run.id);
      std::cout << run.index << "  " << run.id << "  " << joined(run.overrides)
                << (status.empty() ? "" : "  [" + status + "]") << "\n";
    }
    return kExitOk;
  }
  write_manifest(dir, request, *plan);
  if (request.launcher == "slurm") return submit_slurm(request, *plan, dir);

  // Threads per run so that `jobs` runs share the cores; GPUs round-robin over the slots.
  const int jobs = std::max(1, request.jobs);
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int threads = static_cast<int>(std::max(1u, cores / static_cast<unsigned>(jobs)));
  const bool threads_given = std::any_of(request.overrides.begin(), request.overrides.end(),
                                         [](const std::string& o) { return o.rfind("run.threads=", 0) == 0; });
  const int gpus = static_cast<int>(torch::cuda::device_count());
  const fs::path self = fs::read_symlink("/proc/self/exe");

  std::vector<const SweepRun*> pending;
  int finished = 0, failed = 0, diverged = 0;
  for (const auto& run : plan->runs) {
    const std::string status = status_of(dir / run.id);
    if (status == "done" || status == "diverged") {
      ++finished;
      diverged += status == "diverged";
    } else {
      pending.push_back(&run);
    }
  }
  log::info("sweep ", plan->name, ": ", plan->runs.size(), " runs, ", finished, " already finished, ", pending.size(),
            " to run, ", jobs, " at a time (", threads, " threads each) -> ", dir.string());

  struct Child {
    const SweepRun* run;
    int slot;
    std::chrono::steady_clock::time_point start;
  };
  std::map<pid_t, Child> running;
  std::vector<bool> slot_busy(static_cast<size_t>(jobs), false);
  catch_stop_signals(on_sweep_signal);
  size_t next = 0;
  while (next < pending.size() || !running.empty()) {
    while (!g_sweep_signal && next < pending.size() && static_cast<int>(running.size()) < jobs) {
      const SweepRun* run = pending[next++];
      const int slot = static_cast<int>(std::find(slot_busy.begin(), slot_busy.end(), false) - slot_busy.begin());
      std::vector<std::string> args = {self.string(), "run", "--sweep", request.recipe, "--index",
                                       std::to_string(run->index), "--out", dir.string()};
      for (const auto& d : request.plugin_dirs) args.insert(args.end(), {"--plugins", d});
      args.insert(args.end(), request.overrides.begin(), request.overrides.end());
      if (!threads_given) args.push_back("run.threads=" + std::to_string(threads));
      fs::create_directories(dir / run->id);
      const std::string console = (dir / run->id / "console.log").string();
      const pid_t pid = fork();
      if (pid == 0) {
        const int fd = ::open(console.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
        if (fd >= 0) {
          dup2(fd, 1);
          dup2(fd, 2);
        }
        if (gpus > 0) setenv("CUDA_VISIBLE_DEVICES", std::to_string(slot % gpus).c_str(), 1);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
      }
      slot_busy[static_cast<size_t>(slot)] = true;
      running[pid] = {run, slot, std::chrono::steady_clock::now()};
    }
    if (running.empty()) break;
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) {
        for (auto& [child, info] : running) kill(child, SIGINT);  // they checkpoint and stop
        continue;
      }
      break;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const Child child = it->second;
    running.erase(it);
    slot_busy[static_cast<size_t>(child.slot)] = false;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - child.start).count();
    std::string outcome = "done";
    if (code == kExitOk) {
      ++finished;
    } else if (code == kExitDiverged) {
      ++finished, ++diverged, outcome = "diverged";
    } else if (code == kExitInterrupted) {
      outcome = "interrupted";
    } else {
      ++failed, outcome = "FAILED (exit " + std::to_string(code) + ", see " + (dir / child.run->id / "console.log").string() + ")";
    }
    char line[64];
    std::snprintf(line, sizeof line, "[%d/%zu] ", finished + failed, plan->runs.size());
    char took[32];
    std::snprintf(took, sizeof took, "%.1f", seconds);
    log::info(line, child.run->id, " ", outcome, " in ", took, " s: ", joined(child.run->overrides));
    // Per-run process times, for efficiency accounting (tools/bench/sweep_efficiency.py).
    std::ofstream(dir / "launcher.tsv", std::ios::app) << child.run->index << "\t" << child.run->id << "\t" << code
                                                        << "\t" << seconds << "\n";
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  log::info("sweep ", plan->name, ": ", finished, " finished (", diverged, " diverged), ", failed, " failed, ",
            plan->runs.size() - static_cast<size_t>(finished + failed), " not run; assay status ", dir.string());
  if (g_sweep_signal) return kExitInterrupted;
  return failed ? kExitFailed : kExitOk;
}

int status_command(const std::string& sweep_dir) {
  const fs::path manifest_path = fs::path(sweep_dir) / "sweep.toml";
  if (!fs::exists(manifest_path)) {
    std::cerr << sweep_dir << ": no sweep.toml (not a sweep directory written by `assay sweep`)\n";
    return kExitBadInput;
  }
  toml::table manifest;
  try {
    manifest = toml::parse_file(manifest_path.string());
  } catch (const toml::parse_error& e) {
    std::cerr << manifest_path.string() << ": " << e.description() << "\n";
    return kExitFailed;
  }
  std::map<std::string, int> counts;
  const auto* runs = manifest["runs"].as_array();
  std::cout << "sweep " << sweep_dir << " (" << manifest["recipe"].value_or(std::string("?")) << ")\n";
  for (const auto& node : runs ? *runs : toml::array{}) {
    const auto& run = *node.as_table();
    const std::string id = run["id"].value_or(std::string("?"));
    std::string overrides;
    if (const auto* items = run["overrides"].as_array()) {
      for (const auto& o : *items) overrides += (overrides.empty() ? "" : " ") + o.value_or(std::string());
    }
    const fs::path store = fs::path(sweep_dir) / id / "run.h5";
    std::string status = "pending", detail;
    if (fs::exists(store)) {
      try {
        StoreSummary summary = summarize_store(store.string());
        status = summary.status;
        detail = "step " + std::to_string(summary.last_step) + "/" + std::to_string(summary.total_steps);
        if ((status == "failed" || status == "diverged") && !summary.error.empty()) detail += "  " + summary.error;
      } catch (const std::exception& e) {
        status = "unreadable";
        detail = e.what();
      }
    }
    ++counts[status];
    char prefix[64];
    std::snprintf(prefix, sizeof prefix, "%4lld  %s  %-11s", static_cast<long long>(run["index"].value_or(int64_t{0})),
                  id.c_str(), status.c_str());
    std::cout << prefix << "  " << overrides << (detail.empty() ? "" : "  (" + detail + ")") << "\n";
  }
  std::cout << "total " << (runs ? runs->size() : 0) << ":";
  for (const auto& [status, n] : counts) std::cout << " " << status << " " << n;
  std::cout << "\n";
  return kExitOk;
}

}  // namespace assay
