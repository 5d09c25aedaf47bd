#pragma once
// run.cuda_graph: the whole training step (forward, backward, clipping, optimizer) captured once as a CUDA
// graph and replayed every step, so a step of a tiny model costs one launch instead of hundreds.
#include <functional>
#include <memory>

namespace assay {

/// Sets what assay::cuda_graph_active() reports (components.hpp): the host, around a graphed stage.
void set_cuda_graph_active(bool active);

/// One captured step on the current CUDA device. Built without CUDA, every call throws.
class StepGraph {
 public:
  StepGraph();
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  /// Runs `body` eagerly on the capture stream (what it needs allocated before capture: cuBLAS workspaces,
  /// autograd's buffers), then waits for it.
  void warm_up(const std::function<void()>& body);
  /// Records `body` into the graph without running it. On failure (an operation that cannot be captured)
  /// ends the capture, drops the graph and throws std::runtime_error with the reason.
  void capture(const std::function<void()>& body);
  bool captured() const;
  /// Runs the captured step on the current stream.
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace assay
