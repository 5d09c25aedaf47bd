#pragma once
// Facts about the machine and build, recorded in every run store's /env.
#include <map>
#include <string>

namespace assay {
/// "2026-11-23T01:02:03Z"
std::string utc_now();
/// host, time, assay_version, sdk_abi, torch_version, git_commit, cuda_available, threads, ...
std::map<std::string, std::string> environment();
}  // namespace assay
