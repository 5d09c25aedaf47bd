// Argument parsing for the `assay` command; the commands themselves live in libassay (commands.hpp).
#include "cli.hpp"

#include "commands.hpp"

#include <CLI/CLI.hpp>

#include <filesystem>

namespace assay {

int cli_main(int argc, char** argv) {
  CLI::App app{"assay: experiments for language-model training research.\n"
               "Exit codes: 0 ok, 1 run failed, 2 bad input (nothing ran), 3 diverged, 4 plugin error, "
               "130 interrupted."};
  app.require_subcommand(0, 1);
  bool version = false;
  app.add_flag("--version", version, "print versions and exit");
  std::vector<std::string> plugin_dirs;
  auto add_plugins = [&](CLI::App* sub) {
    sub->add_option("--plugins", plugin_dirs, "extra plugin directory, searched before ASSAY_PLUGIN_PATH (repeatable)")
        ->allow_extra_args(false)
        ->check(CLI::ExistingDirectory);
  };

  RunRequest run;
  std::string sweep_recipe;
  int64_t sweep_index = -1;
  auto* run_cmd = app.add_subcommand("run", "train a recipe, writing one run store");
  run_cmd->add_option("recipe", run.recipe, "recipe TOML file");
  auto* sweep_opt = run_cmd->add_option("--sweep", sweep_recipe, "run one run of this sweep recipe (with --index)")
                        ->check(CLI::ExistingFile);
  run_cmd->add_option("--index", sweep_index, "which run of the sweep (0-based)")->needs(sweep_opt);
  run_cmd->add_option("overrides", run.overrides, "key=value overrides, e.g. optimizer.lr=1e-3 run.steps=100");
  run_cmd->add_option("--out", run.out, "run directory (default runs/<name>-<date>-<time>)");
  auto* resume_flag = run_cmd->add_flag("--resume", run.resume, "continue the run in --out from its newest checkpoint");
  run_cmd->add_option("--from", run.from,
                      "start a new run from another run's checkpoint (checkpoints/step-N, or a run directory for its "
                      "newest): weights, optimizer state and step; the recipe may change the rest, e.g. the precision")
      ->excludes(resume_flag);
  run_cmd->add_option("--nproc", run.nproc,
                      "data parallel: start this many processes on this host, each step's batch split over them "
                      "(Gloo on CPU, NCCL on CUDA; torchrun and srun work too, docs/data-parallel.md)")
      ->check(CLI::Range(1, 1024));
  add_plugins(run_cmd);

  std::string recipe;
  std::vector<std::string> overrides;
  auto* validate_cmd = app.add_subcommand("validate", "check a recipe; print it fully resolved, or every error");
  validate_cmd->add_option("recipe", recipe, "recipe TOML file")->required()->check(CLI::ExistingFile);
  validate_cmd->add_option("overrides", overrides, "key=value overrides");
  add_plugins(validate_cmd);

  std::string filter;
  auto* plugins_cmd = app.add_subcommand("plugins", "list components with versions, parameters, defaults and docs");
  plugins_cmd->add_option("filter", filter, "a kind (task, model, ...) or a component name");
  add_plugins(plugins_cmd);

  std::string path;
  int max_events = 20;
  auto* inspect_cmd = app.add_subcommand("inspect", "summarize a run store: status, last metrics, events");
  inspect_cmd->add_option("path", path, "run directory or run.h5")->required();
  inspect_cmd->add_option("--events", max_events, "how many of the last events to show");

  SweepRequest sweep;
  auto* sweep_cmd = app.add_subcommand("sweep", "run every run of a recipe's [sweep] (skips finished, resumes interrupted)");
  sweep_cmd->add_option("recipe", sweep.recipe, "recipe TOML file with a [sweep] table")->required()->check(CLI::ExistingFile);
  sweep_cmd->add_option("overrides", sweep.overrides, "key=value overrides for every run");
  sweep_cmd->add_option("--out", sweep.out, "sweep directory (default runs/<name>-sweep)");
  sweep_cmd->add_option("--jobs,-j", sweep.jobs, "runs at a time (local launcher)")->check(CLI::PositiveNumber);
  sweep_cmd->add_option("--launcher", sweep.launcher, "local")->check(CLI::IsMember({"local", "slurm"}));
  sweep_cmd->add_flag("--dry-run", sweep.dry_run, "print the runs (index, id, overrides) and exit");
  sweep_cmd->add_option("--slurm-arg", sweep.slurm_args, "extra sbatch option, e.g. --slurm-arg=--time=2:00:00 (repeatable)")
      ->allow_extra_args(false);
  sweep_cmd->add_option("--signal-seconds", sweep.signal_seconds,
                        "slurm: SIGUSR1 this many seconds before the time limit (checkpoint and requeue)");
  sweep_cmd->add_flag("--wait", sweep.wait, "slurm: wait until the array has finished and print its status");
  add_plugins(sweep_cmd);

  std::string status_dir;
  auto* status_cmd = app.add_subcommand("status", "per-run status and progress of a sweep directory");
  status_cmd->add_option("dir", status_dir, "sweep directory")->required();

  std::string report_output = "report.html";
  int watch_seconds = 0;
  auto* report_cmd = app.add_subcommand("report", "one self-contained HTML page with figures and tables (analysis/)");
  report_cmd->add_option("path", path, "run directory, run.h5, or a folder of runs (a sweep)")->required();
  report_cmd->add_option("-o,--output", report_output, "HTML file to write");
  report_cmd->add_option("--watch", watch_seconds, "rewrite every N seconds until every run has ended")->check(CLI::PositiveNumber);

  MxRequest mx;
  auto join = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  auto* mx_cmd = app.add_subcommand(
      "mx", "quantize a float tensor of an HDF5 file with MX formats and report the errors (docs/mx.md)");
  mx_cmd->add_option("file", mx.file, "HDF5 file")->required();
  mx_cmd->add_option("--dataset,-d", mx.dataset, "dataset path in the file (default: its only float32/float64 dataset)");
  mx_cmd->add_option("--format,-f", mx.formats, "formats, comma-separated or repeated, or all (default): " +
                                                    join(mx_format_names()))
      ->delimiter(',')
      ->allow_extra_args(false);
  mx_cmd->add_option("--axis", mx.axis, "axis the blocks run along; negative counts from the end")->capture_default_str();
  mx_cmd->add_option("--block", mx.block_size, "elements sharing one scale")->capture_default_str();
  mx_cmd->add_option("--rounding", mx.rounding, join(mx_rounding_names()))->capture_default_str();
  mx_cmd->add_option("--seed", mx.seed, "seed of stochastic rounding")->capture_default_str();
  mx_cmd->add_flag("--json", mx.json, "one JSON object per format and line instead of the table");

  // Everything after `analyze` goes to the Python package as is (its own --help and errors, exit 2 for bad
  // input), so a new cross-run analysis needs no change here.
  auto* analyze_cmd = app.add_subcommand(
      "analyze", "a cross-run analysis of a folder of runs: analyze NAME DIR [options] (analysis/; NAME: "
                 "instability, seed_distribution, steps_to_target; assay analyze NAME --help)");
  analyze_cmd->prefix_command();
  analyze_cmd->set_help_flag();  // `assay analyze [NAME] --help` is answered by the package

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }
  if (version) {
    std::cout << version_text() << "\n";
    return kExitOk;
  }
  run.plugin_dirs = plugin_dirs;
  sweep.plugin_dirs = plugin_dirs;
  if (*run_cmd) {
    if (!sweep_recipe.empty()) {
      if (sweep_index < 0) {
        std::cerr << "run --sweep RECIPE needs --index I\n";
        return kExitBadInput;
      }
      // With --sweep every positional argument is an override.
      if (!run.recipe.empty()) run.overrides.insert(run.overrides.begin(), run.recipe);
      run.recipe = sweep_recipe;
      return sweep_index_command(run, sweep_index);
    }
    if (run.recipe.empty() || !std::filesystem::is_regular_file(run.recipe)) {
      std::cerr << "run: " << (run.recipe.empty() ? "a recipe is required" : "no such recipe file: " + run.recipe)
                << " (see assay run --help)\n";
      return kExitBadInput;
    }
    return run_command(run);
  }
  if (*sweep_cmd) return sweep_command(sweep);
  if (*status_cmd) return status_command(status_dir);
  if (*validate_cmd) return validate_command(recipe, overrides, plugin_dirs);
  if (*plugins_cmd) return plugins_command(filter, plugin_dirs);
  if (*inspect_cmd) return inspect_command(path, max_events);
  if (*report_cmd) return report_command(path, report_output, watch_seconds);
  if (*mx_cmd) return mx_command(mx);
  if (*analyze_cmd) return analyze_command(analyze_cmd->remaining());
  std::cout << app.help();
  return kExitBadInput;
}

}  // namespace assay
