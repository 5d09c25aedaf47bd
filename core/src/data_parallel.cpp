#include "data_parallel.hpp"

#include <assay/log.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef ASSAY_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef ASSAY_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>

namespace assay {
namespace {

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (!value || !*value) return std::nullopt;
  return std::string(value);
}

int env_int(const char* name, int fallback) {
  auto text = env(name);
  if (!text) return fallback;
  char* end = nullptr;
  const long value = std::strtol(text->c_str(), &end, 10);
  if (*end != '\0' || value < 0 || value > 1 << 30) {
    throw std::runtime_error(std::string("environment variable ") + name + "=" + *text + ": expected a non-negative integer");
  }
  return static_cast<int>(value);
}

}  // namespace

RankInfo rank_from_environment() {
  RankInfo info;
  if (env("WORLD_SIZE")) {  // torchrun, or anything that speaks its protocol
    info.world_size = env_int("WORLD_SIZE", 1);
    info.rank = env_int("RANK", -1);
    if (info.rank < 0) throw std::runtime_error("WORLD_SIZE is set but RANK is not");
    info.local_rank = env_int("LOCAL_RANK", info.rank);
    info.master_addr = env("MASTER_ADDR").value_or("127.0.0.1");
    info.master_port = env_int("MASTER_PORT", 29500);
  } else if (env("SLURM_NTASKS") && env("SLURM_PROCID")) {  // srun
    info.world_size = env_int("SLURM_NTASKS", 1);
    info.rank = env_int("SLURM_PROCID", 0);
    info.local_rank = env_int("SLURM_LOCALID", 0);
    if (auto addr = env("MASTER_ADDR")) {
      info.master_addr = *addr;
    } else if (env_int("SLURM_NNODES", 1) == 1) {
      info.master_addr = "127.0.0.1";
    } else if (info.world_size > 1) {
      throw std::runtime_error("a Slurm job over several nodes: set MASTER_ADDR to the first node's address");
    }
    info.master_port = env_int("MASTER_PORT", 29500 + env_int("SLURM_JOB_ID", 0) % 1000);
  }
  if (info.world_size < 1) throw std::runtime_error("WORLD_SIZE must be at least 1");
  if (info.rank >= info.world_size) {
    throw std::runtime_error("rank " + std::to_string(info.rank) + " is outside a world of " +
                             std::to_string(info.world_size) + " processes (RANK / SLURM_PROCID)");
  }
  if (info.master_port > 65535) throw std::runtime_error("MASTER_PORT must be below 65536");
  return info;
}

struct DataParallel::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::string name;
};

DataParallel::DataParallel(const RankInfo& info, c10::Device device, double bucket_mb, double timeout_seconds)
    : info_(info), bucket_bytes_(bucket_mb * (1 << 20)), group_(std::make_unique<Group>()) {
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(info.master_port);
  store_options.isServer = info.rank == 0;
  store_options.numWorkers = static_cast<size_t>(info.world_size);
  store_options.waitWorkers = true;
  store_options.timeout = timeout;
  try {
    group_->store = c10::make_intrusive<c10d::TCPStore>(info.master_addr, store_options);
  } catch (const std::exception& e) {
    throw std::runtime_error("data parallel: rank " + std::to_string(info.rank) + " could not meet the others at " +
                             info.master_addr + ":" + std::to_string(info.master_port) + ": " + e.what());
  }
  if (device.is_cuda()) {
#ifdef ASSAY_WITH_NCCL
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    group_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(group_->store, info.rank, info.world_size, options);
    group_->name = "nccl";
#else
    throw std::runtime_error("data parallel on CUDA needs NCCL, and this assay was built without it "
                             "(LibTorch without CUDA, or nccl.h not found)");
#endif
  } else {
#ifdef ASSAY_WITH_GLOO
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    const bool loopback = info.master_addr == "127.0.0.1" || info.master_addr == "localhost";
    options->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                        : c10d::ProcessGroupGloo::createDefaultDevice());
    group_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, info.rank, info.world_size, options);
    group_->name = "gloo";
#else
    throw std::runtime_error("data parallel on CPU needs Gloo, and this assay was built without it "
                             "(gloo headers not found: bash tools/setup.sh installs libgloo-dev)");
#endif
  }
}

DataParallel::~DataParallel() {
  try {
    if (group_ && group_->backend) group_->backend->shutdown();  // NCCL: release the communicators cleanly
  } catch (const std::exception& e) {
    log::warn("data parallel: shutting the ", group_->name, " group down: ", e.what());
  }
}

const std::string& DataParallel::backend() const { return group_->name; }

void DataParallel::broadcast(const std::vector<at::Tensor>& tensors) {
  for (const auto& t : tensors) {
    std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    group_->backend->broadcast(one)->wait();
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

void DataParallel::reduce_step(std::vector<double>& scalars, const std::vector<at::Tensor>& params) {
  // Step state first (small, on the CPU for Gloo, the GPU for NCCL): the scalars and which parameters
  // have a gradient on some rank.
  const auto device = params.empty() ? c10::Device(c10::kCPU) : params.front().device();
  auto state = at::zeros({static_cast<int64_t>(scalars.size() + params.size())}, at::kDouble);
  auto* s = state.data_ptr<double>();
  for (size_t i = 0; i < scalars.size(); ++i) s[i] = scalars[i];
  for (size_t i = 0; i < params.size(); ++i) s[scalars.size() + i] = params[i].grad().defined() ? 1 : 0;
  std::vector<at::Tensor> state_list{state.to(device)};
  group_->backend->allreduce(state_list)->wait();
  state = state_list[0].cpu();
  s = state.data_ptr<double>();
  for (size_t i = 0; i < scalars.size(); ++i) scalars[i] = s[i];

  // Buckets of gradients, same device and dtype each, in reverse order; launched together, then awaited.
  struct Bucket {
    std::vector<size_t> members;
    int64_t bytes = 0;
    at::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  for (size_t k = params.size(); k-- > 0;) {
    if (s[scalars.size() + k] == 0) continue;  // no rank has a gradient for it
    const auto& p = params[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool fits = !buckets.empty() && buckets.back().bytes + bytes <= bucket_bytes_ &&
                      params[buckets.back().members.front()].dtype() == p.dtype() &&
                      params[buckets.back().members.front()].device() == p.device();
    if (!fits) buckets.emplace_back();
    buckets.back().members.push_back(k);
    buckets.back().bytes += bytes;
  }
  for (auto& b : buckets) {
    std::vector<at::Tensor> parts;
    for (size_t k : b.members) {
      const auto& p = params[k];
      parts.push_back(p.grad().defined() ? p.grad().reshape(-1) : at::zeros({p.numel()}, p.options()));
    }
    b.flat = parts.size() == 1 ? parts[0].clone() : at::cat(parts);
    std::vector<at::Tensor> one{b.flat};
    b.work = group_->backend->allreduce(one);
    reduced_bytes_ += b.bytes;
  }
  for (auto& b : buckets) {
    b.work->wait();
    int64_t offset = 0;
    for (size_t k : b.members) {
      auto p = params[k];
      auto part = b.flat.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(part);
      else p.mutable_grad() = part.clone();
      offset += p.numel();
    }
  }
}

}  // namespace assay
