#include "step_graph.hpp"

#include <stdexcept>
#include <string>

#ifdef ASSAY_WITH_CUDA_GRAPHS
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace assay {

#ifdef ASSAY_WITH_CUDA_GRAPHS

struct StepGraph::Impl {
  c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
  std::unique_ptr<at::cuda::CUDAGraph> graph;
};

StepGraph::StepGraph() : impl_(std::make_unique<Impl>()) {}
StepGraph::~StepGraph() = default;

void StepGraph::warm_up(const std::function<void()>& body) {
  auto current = c10::cuda::getCurrentCUDAStream();
  current.synchronize();
  {
    c10::cuda::CUDAStreamGuard on_side(impl_->stream);
    body();
  }
  impl_->stream.synchronize();
}

void StepGraph::capture(const std::function<void()>& body) {
  c10::cuda::getCurrentCUDAStream().synchronize();
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  c10::cuda::CUDAStreamGuard on_side(impl_->stream);
  // Autocast's cast cache would hand the graph tensors cast at capture time, stale at replay.
  const bool cache = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_cache_enabled(false);
  graph->capture_begin();
  try {
    body();
  } catch (const std::exception& e) {
    std::string reason = e.what();
    try {
      graph->capture_end();  // leaves capture mode; throws when the capture was invalidated
    } catch (const std::exception&) {
    }
    at::autocast::set_autocast_cache_enabled(cache);
    throw std::runtime_error(reason.substr(0, reason.find('\n')));
  }
  try {
    graph->capture_end();
  } catch (const std::exception& e) {
    at::autocast::set_autocast_cache_enabled(cache);
    const std::string reason = e.what();
    throw std::runtime_error(reason.substr(0, reason.find('\n')));
  }
  at::autocast::set_autocast_cache_enabled(cache);
  impl_->graph = std::move(graph);
}

bool StepGraph::captured() const { return impl_->graph != nullptr; }

void StepGraph::replay() { impl_->graph->replay(); }

#else

struct StepGraph::Impl {};
StepGraph::StepGraph() = default;
StepGraph::~StepGraph() = default;
void StepGraph::warm_up(const std::function<void()>&) { throw std::runtime_error("assay was built without CUDA"); }
void StepGraph::capture(const std::function<void()>&) { throw std::runtime_error("assay was built without CUDA"); }
bool StepGraph::captured() const { return false; }
void StepGraph::replay() { throw std::runtime_error("assay was built without CUDA"); }

#endif

}  // namespace assay
