#pragma once
// Checkpoints: <run dir>/checkpoints/step-N/state.pt holds model, optimizer, RNG and progress.
// Written to step-N.tmp and renamed, so a checkpoint directory without the suffix is always complete.
#include <assay/components.hpp>

#include <optional>
#include <string>

namespace assay {

struct Progress {
  int64_t stage = 0;  ///< index of the stage the step belongs to
  int64_t step = 0;   ///< global steps completed
  double wall = 0;    ///< seconds of training so far
  double loss_scale = 0;               ///< fp16 autocast's dynamic loss scale; 0 = none
  int64_t loss_scale_good_steps = 0;   ///< its steps without overflow since the last change
};

void save_checkpoint(const std::string& run_dir, const Progress& progress, Model& model, const Optimizer& optimizer,
                     const Algorithm& algorithm, int64_t keep);
/// Restores the model, the RNG state and (when not null) the optimizer and the algorithm; returns the progress.
Progress load_checkpoint(const std::string& directory, Model& model, Optimizer* optimizer, Algorithm* algorithm);
/// The progress recorded in a checkpoint, without loading anything else.
Progress checkpoint_progress(const std::string& directory);
/// Newest complete checkpoint directory of a run, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

}  // namespace assay
