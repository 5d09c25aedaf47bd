#pragma once
// Sweeps: one recipe with a [sweep] table expands into many runs (grid | zip | random over recipe keys,
// times seeds). A run's id is a stable hash of its overrides, so re-running a sweep finds its runs again.
#include <cstdint>
#include <string>
#include <vector>

namespace assay {

class Registry;

struct SweepRun {
  int64_t index = 0;
  std::string id;                      ///< 12 hex digits of a hash of `overrides`
  std::vector<std::string> overrides;  ///< key=value, the seed last ("run.seed=3")
};

struct SweepPlan {
  std::string mode;
  std::string name;  ///< the recipe's run.name
  std::vector<SweepRun> runs;
};

/// Expands the [sweep] table of `recipe` (after extends and `overrides`). Throws RecipeError.
SweepPlan expand_sweep(const std::string& recipe, const std::vector<std::string>& overrides, const Registry& registry);

/// Stable id of a run: FNV-1a 64 (+ a finalizer) of its overrides joined by newlines, as 12 hex digits.
std::string run_id(const std::vector<std::string>& overrides);

}  // namespace assay
