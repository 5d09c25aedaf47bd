#include "env.hpp"

#include <assay/version.hpp>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <unistd.h>

#include <ctime>

namespace assay {

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buf;
}

std::map<std::string, std::string> environment() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return {
      {"host", host},
      {"time", utc_now()},
      {"assay_version", ASSAY_VERSION},
      {"sdk_abi", std::to_string(ASSAY_SDK_ABI)},
      {"torch_version", TORCH_VERSION},
      {"git_commit", ASSAY_GIT_COMMIT},
      {"cuda_available", torch::cuda::is_available() ? "yes" : "no"},
      {"cuda_devices", std::to_string(torch::cuda::device_count())},
      {"threads", std::to_string(at::get_num_threads())},
  };
}

}  // namespace assay
