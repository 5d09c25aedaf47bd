// The fused 16-bit-output norm vs what it replaces, side by side in one process: LayerNorm of a float32 [rows, dim]
// tensor whose output a bf16 matmul consumes (GPT-2-small's shape by default: 16 x 1024 tokens, width 768).
//   - ATen: at::layer_norm in float32, the cast to bf16, and autograd's backward from a bf16 gradient (the cast's
//     backward, native_layer_norm_backward with its weight/bias reduction);
//   - fused: assay::fused_norm::apply, forward and backward;
//   - a device copy of the bytes each pass must move at least (forward: x read + y written; backward: x and dy
//     read, dx written), as the memory-speed bound.
// Usage: bench_fused_norm [--device cpu|cuda] [--rows R] [--dim D] [--repeats N]
#include <assay/fused_norm.hpp>

#include "bench_support.hpp"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  std::string device = "cpu";
  int64_t rows = 16 * 1024, dim = 768;
  int repeats = 50;
  if (!bench::Flags().add("device", device).add("rows", rows).add("dim", dim).add("repeats", repeats).parse(argc, argv)) {
    return 2;
  }
  const bool cuda = device == "cuda";
  if (cuda && !torch::cuda::is_available()) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  const auto wait = [cuda] { if (cuda) torch::cuda::synchronize(); };
  const auto time = [&](const std::function<void()>& body) { return bench::median_seconds(body, repeats, wait) * 1e3; };
  torch::manual_seed(0);
  const auto f32 = torch::TensorOptions().device(cuda ? torch::kCUDA : torch::kCPU);
  auto x = (torch::randn({rows, dim}, f32) * 2 + 1).requires_grad_(true);
  auto weight = (torch::rand({dim}, f32) + 0.5).requires_grad_(true), bias = torch::randn({dim}, f32).requires_grad_(true);
  auto dy = torch::randn({rows, dim}, f32).to(torch::kBFloat16);
  const auto clear = [&] { for (auto* t : {&x, &weight, &bias}) t->mutable_grad() = at::Tensor(); };

  // Memory-speed bounds: copies of the bytes each pass moves.
  auto forward_bytes = torch::empty({rows * dim * 6 / 4}, f32), forward_copy = torch::empty_like(forward_bytes);
  auto backward_bytes = torch::empty({rows * dim * 10 / 4}, f32), backward_copy = torch::empty_like(backward_bytes);
  const double copy_forward = time([&] { forward_copy.copy_(forward_bytes); }) / 2;  // a copy reads and writes
  const double copy_backward = time([&] { backward_copy.copy_(backward_bytes); }) / 2;

  const double aten_forward = time([&] {
    torch::NoGradGuard no_grad;
    at::layer_norm(x, {dim}, weight, bias, 1e-5).to(torch::kBFloat16);
  });
  const double aten_step = time([&] {
    clear();
    at::layer_norm(x, {dim}, weight, bias, 1e-5).to(torch::kBFloat16).backward(dy);
  });
  const double fused_forward = time([&] {
    torch::NoGradGuard no_grad;
    assay::fused_norm::forward(x, weight, bias);
  });
  const auto saved = assay::fused_norm::forward(x.detach(), weight.detach(), bias.detach());
  const double fused_backward = time([&] {
    assay::fused_norm::backward(dy, x.detach(), saved.mean, saved.rstd, weight.detach(), true);
  });
  const double fused_step = time([&] {
    clear();
    assay::fused_norm::apply(x, weight, bias).backward(dy);
  });

  std::printf("# LayerNorm -> bf16, %s, %lld x %lld float32, median of %d (ms)\n\n", device.c_str(),
              static_cast<long long>(rows), static_cast<long long>(dim), repeats);
  std::printf("| pass | ATen (norm + cast) | fused | fused vs ATen | memory bound (copy of its bytes) | fused vs bound |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::printf("| forward | %.3f | %.3f | %.2fx | %.3f | %.2f |\n", aten_forward, fused_forward, aten_forward / fused_forward,
              copy_forward, copy_forward / fused_forward);
  std::printf("| backward alone | | %.3f | | %.3f | %.2f |\n", fused_backward, copy_backward, copy_backward / fused_backward);
  std::printf("| forward + backward (autograd) | %.3f | %.3f | %.2fx | %.3f | %.2f |\n", aten_step, fused_step,
              aten_step / fused_step, copy_forward + copy_backward, (copy_forward + copy_backward) / fused_step);
  return 0;
}
