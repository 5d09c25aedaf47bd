#pragma once
// Data-parallel training over c10d process groups (Gloo on CPU, NCCL on CUDA). LibTorch has c10d but no
// C++ DDP; this is the part of DDP assay needs: same initial weights everywhere, and after each step's
// backward the gradients summed over ranks in buckets (docs/data-parallel.md).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

namespace assay {

/// Where this process sits in a data-parallel job.
struct RankInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        ///< index among the ranks of this host: its GPU
  std::string master_addr;   ///< rank 0's host, where the rendezvous store listens
  int master_port = 0;
  bool distributed() const { return world_size > 1; }
};

/// From torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), else Slurm's
/// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; MASTER_ADDR defaults to 127.0.0.1 on one node and
/// MASTER_PORT to 29500 + SLURM_JOB_ID % 1000), else a single process. Throws std::runtime_error with the
/// variable's name when a value is malformed or inconsistent (a rank outside the world, ...).
RankInfo rank_from_environment();

/// A process group over the ranks of `info`, for tensors on `device` (CPU: Gloo, CUDA: NCCL).
class DataParallel {
 public:
  /// Connects to the other ranks (rank 0 hosts the rendezvous store); waits at most `timeout_seconds`.
  /// Throws std::runtime_error when the backend for `device` was not built in or the peers do not come.
  DataParallel(const RankInfo& info, c10::Device device, double bucket_mb, double timeout_seconds);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  const RankInfo& info() const { return info_; }
  /// "gloo" or "nccl".
  const std::string& backend() const;

  /// Overwrites `tensors` with rank 0's values (one collective per tensor; for set-up, not per step).
  void broadcast(const std::vector<at::Tensor>& tensors);

  /// One step's reduction: sums `scalars` over ranks (in place; a step's loss and flags), then sums the
  /// gradients of `params` over ranks in buckets of about bucket_mb, the buckets in reverse parameter
  /// order (the order backward produces them) and all in flight at once. A parameter without a gradient
  /// on this rank counts as zeros; one that has none on any rank keeps none (so optimizers skip it as
  /// they would in one process).
  void reduce_step(std::vector<double>& scalars, const std::vector<at::Tensor>& params);

  /// Bytes of gradients sent through reduce_step so far (for the benchmark and the log).
  int64_t reduced_bytes() const { return reduced_bytes_; }

 private:
  struct Group;
  RankInfo info_;
  double bucket_bytes_;
  std::unique_ptr<Group> group_;
  int64_t reduced_bytes_ = 0;
};

}  // namespace assay
