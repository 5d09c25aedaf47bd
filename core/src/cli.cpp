// Argument parsing for the `assay` command; the commands themselves live in libassay (commands.hpp).
#include "cli.hpp"

#include "commands.hpp"

#include <CLI/CLI.hpp>

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
  auto* run_cmd = app.add_subcommand("run", "train a recipe, writing one run store");
  run_cmd->add_option("recipe", run.recipe, "recipe TOML file")->required()->check(CLI::ExistingFile);
  run_cmd->add_option("overrides", run.overrides, "key=value overrides, e.g. optimizer.lr=1e-3 run.steps=100");
  run_cmd->add_option("--out", run.out, "run directory (default runs/<name>-<date>-<time>)");
  run_cmd->add_flag("--resume", run.resume, "continue the run in --out from its newest checkpoint");
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

  std::string report_output = "report.html";
  int watch_seconds = 0;
  auto* report_cmd = app.add_subcommand("report", "one self-contained HTML page with figures and tables (analysis/)");
  report_cmd->add_option("path", path, "run directory, run.h5, or a folder of runs (a sweep)")->required();
  report_cmd->add_option("-o,--output", report_output, "HTML file to write");
  report_cmd->add_option("--watch", watch_seconds, "rewrite every N seconds until every run has ended")->check(CLI::PositiveNumber);

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
  if (*run_cmd) return run_command(run);
  if (*validate_cmd) return validate_command(recipe, overrides, plugin_dirs);
  if (*plugins_cmd) return plugins_command(filter, plugin_dirs);
  if (*inspect_cmd) return inspect_command(path, max_events);
  if (*report_cmd) return report_command(path, report_output, watch_seconds);
  std::cout << app.help();
  return kExitBadInput;
}

}  // namespace assay
