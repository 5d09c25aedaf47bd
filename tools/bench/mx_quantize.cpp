// MX quantization throughput and MX linear overhead, side by side in one process:
//   - quantize (GB/s of float32 read + written) vs a plain copy of the same bytes (memcpy on CPU, device-to-device
//     on CUDA);
//   - assay::Linear forward+backward with the mx kernel vs the unquantized layer.
// Usage: bench_mx_quantize [--device cpu|cuda] [--rows R] [--cols C] [--repeats N]
#include <assay/layers.hpp>
#include <assay/mx.hpp>

#include "bench_support.hpp"
#include "registry.hpp"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

namespace mx = assay::mx;

// Median seconds of `repeats` timed calls after 3 warm-up calls.
double median_seconds(const std::function<void()>& body, int repeats, bool cuda) {
  return bench::median_seconds(body, repeats, [cuda] { if (cuda) torch::cuda::synchronize(); });
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu";
  int64_t rows = 4096, cols = 4096;
  int repeats = 20;
  if (!bench::Flags().add("device", device).add("rows", rows).add("cols", cols).add("repeats", repeats).parse(argc, argv)) {
    return 2;
  }
  const bool cuda = device == "cuda";
  if (cuda && !torch::cuda::is_available()) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  torch::manual_seed(0);
  const auto options = torch::TensorOptions().device(cuda ? torch::kCUDA : torch::kCPU);
  auto x = torch::randn({rows, cols}, options);
  auto out = torch::empty_like(x);
  const double gb = 2.0 * x.numel() * 4 / 1e9;  // read + written
  std::printf("# MX quantize, %s, %lld x %lld float32 (%.0f MB), threads %d, median of %d\n\n", device.c_str(),
              static_cast<long long>(rows), static_cast<long long>(cols), x.numel() * 4 / 1e6, at::get_num_threads(), repeats);
  const double copy = median_seconds([&] { out.copy_(x); }, repeats, cuda);
  std::printf("| op | ms, new output | ms, into an existing output | GB/s (existing) | vs copy (existing) |\n|---|---|---|---|---|\n");
  std::printf("| copy (%s) | | %.3f | %.1f | 1.00 |\n", cuda ? "device to device" : "memcpy", copy * 1e3, gb / copy);
  // A new output (what quantize() returns) pays for fresh pages on the CPU (page faults: about 5 ms of 34 MB here);
  // quantize_out into an existing tensor is the like-for-like comparison with the copy.
  const std::vector<std::pair<std::string, mx::QuantizeOptions>> cases = {
      {"fp8_e4m3 axis -1 nearest", {.format = mx::Format::fp8_e4m3}},
      {"fp4_e2m1 axis -1 nearest", {.format = mx::Format::fp4_e2m1}},
      {"int8 axis -1 nearest", {.format = mx::Format::int8}},
      {"fp8_e4m3 axis -1 stochastic", {.format = mx::Format::fp8_e4m3, .rounding = mx::Rounding::stochastic}},
      {"fp8_e4m3 axis 0 nearest", {.format = mx::Format::fp8_e4m3, .axis = 0}},
      {"bf16 elementwise", {.format = mx::Format::bf16}},
  };
  for (const auto& [name, o] : cases) {
    const double fresh = median_seconds([&] { mx::quantize(x, o); }, repeats, cuda);
    const double into = median_seconds([&] { mx::quantize_out(out, x, o); }, repeats, cuda);
    std::printf("| %s | %.3f | %.3f | %.1f | %.2f |\n", name.c_str(), fresh * 1e3, into * 1e3, gb / into, copy / into);
  }

  // MX linear: tokens x in -> out, forward + backward, vs the plain layer (same weights, same inputs).
  const int64_t tokens = cuda ? 8192 : 1024, in = cuda ? 4096 : 512, out_features = cuda ? 4096 : 512;
  assay::Linear layer(in, out_features, true);
  layer->to(options.device());
  auto input = torch::randn({tokens, in}, options.requires_grad(true));
  auto grad = torch::randn({tokens, out_features}, options);
  auto step = [&] {
    layer->zero_grad();
    input.mutable_grad() = at::Tensor();
    layer->forward(input).backward(grad);
  };
  const double plain = median_seconds(step, repeats, cuda);
  std::printf("\n# assay::Linear forward+backward, %lld tokens, %lld -> %lld\n\n| kernel | ms | vs plain |\n|---|---|---|\n",
              static_cast<long long>(tokens), static_cast<long long>(in), static_cast<long long>(out_features));
  std::printf("| float32 (at::linear) | %.3f | 1.00 |\n", plain * 1e3);
  // The model-level kernels come from the mx plugin: a one-layer Model carries the layer through Precision::apply.
  struct OneLayer : assay::Model {
    explicit OneLayer(assay::Linear l) : layer(register_module("layer", std::move(l))) {}
    at::Tensor forward(const at::Tensor& x) override { return layer->forward(x); }
    assay::Linear layer;
  };
  auto model = std::make_shared<OneLayer>(layer);
  assay::Registry registry;
  registry.load_directories(assay::Registry::search_path({}));
  const std::vector<std::pair<std::string, assay::Values>> schemes = {
      {"mx fp8_e4m3, bf16 vector ops", {}},
      {"mx fp8_e4m3, forward only", {{"quantize_backprop", false}}},
      {"mx fp4_e2m1", {{"weights", std::string("fp4_e2m1")}, {"activations", std::string("fp4_e2m1")}}},
      {"mx fp32 formats + bf16 vector ops", {{"weights", std::string("fp32")}, {"activations", std::string("fp32")}}},
  };
  for (const auto& [name, overrides] : schemes) {
    assay::Values values;
    for (const auto& p : registry.find(assay::Kind::precision, "mx")->info.schema) values[p.name] = p.default_value;
    for (const auto& [k, v] : overrides) values[k] = v;
    assay::Context context;
    context.device = options.device();
    auto scheme = registry.create<assay::Precision>("mx", values, context);
    assay::clear_layer_kernels(*model);
    scheme->apply(*model);
    model->to(options.device());
    const double t = median_seconds(step, repeats, cuda);
    std::printf("| %s | %.3f | %.2f |\n", name.c_str(), t * 1e3, t / plain);
    std::fflush(stdout);
  }
  assay::clear_layer_kernels(*model);  // the kernels' code lives in the plugin, unloaded with the registry
  return 0;
}
