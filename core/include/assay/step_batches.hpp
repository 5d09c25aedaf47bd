#pragma once
/// @file The training batch of the step being computed, fetched once per step and cut into the host's
/// micro-batches (run.grad_accum): what Algorithm::loss(step, micro, micro_count) of a supervised algorithm needs.
#include <assay/components.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace assay {

class StepBatches {
 public:
  explicit StepBatches(Task& task) : task_(task) {}

  /// Fetches task.train_batch(step) into this object's buffers, in place once they exist (what a
  /// capturable Algorithm::prepare calls, so a captured CUDA graph reads each step's data); micro_batch
  /// then cuts that step's batch without fetching. Throws std::runtime_error when the batch changes shape
  /// while a CUDA graph is active.
  void prepare(int64_t step) {
    Batch fresh = task_.train_batch(step);
    const bool fits = batch_.inputs.defined() && fresh.inputs.sizes() == batch_.inputs.sizes() &&
                      fresh.targets.sizes() == batch_.targets.sizes() &&
                      fresh.inputs.dtype() == batch_.inputs.dtype() && fresh.targets.dtype() == batch_.targets.dtype();
    if (fits) {
      batch_.inputs.copy_(fresh.inputs);
      batch_.targets.copy_(fresh.targets);
    } else if (cuda_graph_active()) {
      throw std::runtime_error("step " + std::to_string(step) + ": the task's batch changed shape under a CUDA graph "
                               "(run.cuda_graph needs batches of one shape)");
    } else {
      batch_ = fresh;
    }
    step_ = step;
  }

  /// Micro-batch `micro` of `micro_count` of task.train_batch(step) (rows divided as Tensor::tensor_split does)
  /// and its share of the batch's rows (StepOutput::weight); the whole batch and 1 when micro_count <= 1.
  /// Throws std::invalid_argument when the batch has fewer rows than micro-batches (an empty one has no loss).
  std::pair<Batch, double> micro_batch(int64_t step, int micro, int micro_count) {
    if (step != step_) {
      batch_ = task_.train_batch(step);
      step_ = step;
    }
    if (micro_count <= 1) return {batch_, 1.0};
    const int64_t rows = batch_.inputs.size(0);
    if (rows < micro_count) {
      throw std::invalid_argument("step " + std::to_string(step) + ": the task's batch of " + std::to_string(rows) +
                                  " rows cannot be cut into " + std::to_string(micro_count) +
                                  " micro-batches (run.grad_accum x data-parallel ranks): lower run.grad_accum or "
                                  "raise the task's batch size");
    }
    const auto total = static_cast<double>(rows);
    Batch part{batch_.inputs.tensor_split(micro_count)[static_cast<size_t>(micro)],
               batch_.targets.tensor_split(micro_count)[static_cast<size_t>(micro)]};
    return {part, static_cast<double>(part.inputs.size(0)) / total};
  }

 private:
  Task& task_;
  Batch batch_;
  int64_t step_ = -1;
};

}  // namespace assay
