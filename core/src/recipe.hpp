#pragma once
// Recipes: TOML files with `extends`, command-line overrides and [[stages]], validated against the
// components' schemas before anything runs.
#include <assay/components.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace assay {

class Registry;

/// Run-wide settings: the [run] table.
struct RunOptions {
  std::string name = "run";
  int64_t seed = 0;
  std::string device = "auto";
  int64_t eval_every = 0;
  int64_t checkpoint_every = 0;
  int64_t keep_checkpoints = 2;
  int64_t log_every = 1;
  int64_t threads = 0;
  double flush_seconds = 30;
  double dp_bucket_mb = 25;
  double dp_timeout = 600;
  bool cuda_graph = false;

  void fields(Fields& f) {
    f("name", name, "run name; the default output directory is runs/<name>-<date>-<time>");
    f("seed", seed, "seed of parameters, data order and sampling").min(0);
    f("device", device, "where to train; auto = cuda when available").choices({"auto", "cpu", "cuda"});
    f("eval_every", eval_every, "evaluate and run analyzers every N steps (and at the end); 0 = only at the end").min(0);
    f("checkpoint_every", checkpoint_every, "checkpoint every N steps (and at the end); 0 = only at the end").min(0);
    f("keep_checkpoints", keep_checkpoints, "newest checkpoints kept on disk").min(1);
    f("log_every", log_every, "record training metrics every N steps").min(1);
    f("threads", threads, "CPU threads for LibTorch; 0 = one per core").min(0);
    f("flush_seconds", flush_seconds, "longest time between run-store flushes").min(0.1);
    f("dp_bucket_mb", dp_bucket_mb, "data parallel: gradients are summed over ranks in buckets of about this many MiB")
        .min(0.0001);
    f("dp_timeout", dp_timeout, "data parallel: seconds a rank waits for the others before the run fails").min(1);
    f("cuda_graph", cuda_graph,
      "capture the training step as one CUDA graph and replay it (static shapes; components must be capturable: "
      "otherwise the run trains eagerly and its log says why)");
  }
};

/// Per-stage settings: keys of [run] that every [[stages]] entry may override.
struct StageOptions {
  int64_t steps = 1000;
  std::string lr_schedule = "constant";
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
  double grad_clip = 0.0;
  int64_t grad_accum = 1;
  bool keep_optimizer = false;
  std::string autocast = "off";

  void fields(Fields& f) {
    f("steps", steps, "optimizer steps in this stage").min(0);
    f("lr_schedule", lr_schedule, "learning-rate factor after warm-up").choices({"constant", "cosine", "linear"});
    f("warmup_steps", warmup_steps, "linear warm-up from lr/warmup_steps to lr").min(0);
    f("min_lr_ratio", min_lr_ratio, "floor of the cosine/linear decay, as a fraction of lr").range(0, 1);
    f("grad_clip", grad_clip, "clip the global gradient L2 norm to this; 0 = off").min(0);
    f("grad_accum", grad_accum, "split each batch into this many micro-batches (same update, less memory)").min(1);
    f("keep_optimizer", keep_optimizer,
      "continue the previous stage's optimizer (state, step count) when this stage's [optimizer] is the same: an "
      "in-situ change of precision or data; false = a fresh optimizer");
    f("autocast", autocast,
      "mixed precision of the training forward, as torch.autocast: bf16, or fp16 with dynamic loss scaling "
      "(torch.amp.GradScaler's rule); off = the model's own dtype. Composes with [precision]")
        .choices({"off", "bf16", "fp16"});
  }
  /// Learning-rate factor at step `s` (0-based) of this stage.
  double lr_factor(int64_t s) const;
};

/// A validated component table.
struct ComponentSpec {
  Kind kind = Kind::task;
  std::string use;      ///< component name
  Values values;        ///< every parameter, defaults filled in
  std::string table;    ///< where it came from: "optimizer", "stages[1].optimizer", "analyzers[0]"
  /// [<table>.groups.<group>]: per model parameter group, the keys set there (optimizers, precision).
  std::map<std::string, Values> group_overrides;
  /// Per group, `values` with that group's overrides applied (what Context::group_values holds).
  std::map<std::string, Values> group_values() const;
};

/// [[precision.switch]]: from global step `at_step` on (that step included) the stage trains under
/// `precision` (an in-situ change of scheme within a stage).
struct PrecisionSwitch {
  int64_t at_step = 0;
  ComponentSpec precision;
};

struct StageSpec {
  std::string name;
  StageOptions options;
  ComponentSpec task, optimizer, algorithm, precision;
  std::vector<PrecisionSwitch> precision_switches;  ///< in increasing at_step, all within the stage
  std::vector<ComponentSpec> analyzers;
};

struct Recipe {
  std::string path;                    ///< the recipe file given
  std::string source;                  ///< its text, as written
  std::vector<std::string> overrides;  ///< key=value from the command line
  RunOptions run;
  Values run_values;                   ///< [run] as validated (for printing)
  ComponentSpec model;
  std::vector<StageSpec> stages;
  bool explicit_stages = false;        ///< written with [[stages]]
  bool has_sweep = false;              ///< has a [sweep] table (run it with `assay sweep`)

  int64_t total_steps() const;
  /// The fully resolved recipe: valid TOML, every default filled in, documented with comments.
  std::string resolved(const Registry& registry) const;
};

/// All problems found in a recipe, one per line: "file:line:column: key: what was expected".
struct RecipeError : std::runtime_error {
  explicit RecipeError(std::vector<std::string> problems);
  std::vector<std::string> problems;
};

/// Reads, merges (extends), overrides and validates a recipe. Throws RecipeError listing every problem.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides, const Registry& registry);

}  // namespace assay
