// EBFT's feature-matching reward, its leave-one-out baselines and the whitening of rollout features, as plain
// tensor functions of the features of one group: n rollouts of one (sequence, block) (used by ebft.cpp;
// tested against hand-computed values and an SVD reference). Formulas: ../shared/papers/ebft.md.
#pragma once
#include <torch/torch.h>

#include <stdexcept>

namespace ebft {

/// Per-rollout terms of groups of n rollouts: features [G, n, F], targets [G, n, F] (the ground-truth
/// feature, one row per rollout: replicated, or whitened with the rollouts).
struct Terms {
  at::Tensor alignment;  ///< [G, n]: 2 cos(phi_j, phi*_j)
  at::Tensor diversity;  ///< [G, n]: 2 / (n - 1) sum_{k != j} <phi_j, phi_k>
};

inline Terms terms(const at::Tensor& features, const at::Tensor& targets) {
  const int64_t n = features.size(1);
  if (n < 2) throw std::invalid_argument("ebft: the feature-matching reward needs n >= 2 rollouts per sequence");
  auto cos = torch::cosine_similarity(features, targets, -1, 1e-12);
  auto gram = torch::matmul(features, features.transpose(1, 2));  // [G, n, n]
  auto others = gram.sum(-1) - gram.diagonal(0, 1, 2);
  return {2 * cos, 2.0 / static_cast<double>(n - 1) * others};
}

/// r_j = alignment_coef * a_j - diversity_coef * d_j.
inline at::Tensor rewards(const Terms& t, double alignment_coef, double diversity_coef) {
  return alignment_coef * t.alignment - diversity_coef * t.diversity;
}

/// A_j = r_j - (alignment_coef b^a_j - diversity_coef b^d_j) with the leave-one-out baselines
/// b^a_j = mean_{k != j} a_k and b^d_j = (sum_k d_k - 2 d_j) / (n - 2) (the mean diversity term of the other
/// n - 1 rollouts among themselves; needs n >= 3 when diversity_coef > 0).
inline at::Tensor advantages(const Terms& t, double alignment_coef, double diversity_coef) {
  const int64_t n = t.alignment.size(1);
  auto b_alignment = (t.alignment.sum(1, true) - t.alignment) / static_cast<double>(n - 1);
  auto baseline = alignment_coef * b_alignment;
  if (diversity_coef != 0) {
    if (n < 3) throw std::invalid_argument("ebft: the diversity baseline needs n >= 3 rollouts per sequence");
    auto b_diversity = (t.diversity.sum(1, true) - 2 * t.diversity) / static_cast<double>(n - 2);
    baseline = baseline - diversity_coef * b_diversity;
  }
  return rewards(t, alignment_coef, diversity_coef) - baseline;
}

/// Whitening per group: W = (X X^T)^{-1/2} of the rollout features X [n, F] through the SVD X = U S V^T
/// (W = U S^-1 U^T; singular values below tolerance * s_max are dropped, a pseudo-inverse), applied to the
/// rollouts and to the replicated ground truth: returns (W X, W Y) with Y = [n, F] rows of the target.
inline std::pair<at::Tensor, at::Tensor> whiten(const at::Tensor& features, const at::Tensor& target, double tolerance = 1e-5) {
  auto x = features.to(torch::kDouble);  // [G, n, F]
  auto y = target.to(torch::kDouble).unsqueeze(1).expand_as(x);
  auto [u, s, vh] = torch::linalg_svd(x, /*full_matrices=*/false);
  auto keep = s > tolerance * s.amax(-1, true);
  auto inverse = torch::where(keep, 1 / s.clamp_min(1e-300), torch::zeros_like(s));
  auto w = torch::matmul(u * inverse.unsqueeze(1), u.transpose(1, 2));  // U diag(1/s) U^T, [G, n, n]
  return {torch::matmul(w, x).to(features.scalar_type()), torch::matmul(w, y).to(features.scalar_type())};
}

}  // namespace ebft
