#include "checkpoint.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/serialize.h>

#include <ftw.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

namespace fs = std::filesystem;

namespace assay {
namespace {

/// std::filesystem::remove_all, which must not be called here: the torch wheel's libtorch.so exports
/// its own copy of std::filesystem, which wins symbol resolution and crashes on non-empty directories.
void remove_tree(const fs::path& path) {
  if (!fs::exists(path)) return;
  nftw(path.c_str(), [](const char* file, const struct stat*, int, struct FTW*) { return ::remove(file); }, 16,
       FTW_DEPTH | FTW_PHYS);
}

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root)) return found;
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || !name.starts_with("step-") || name.ends_with(".tmp")) continue;
    if (!fs::exists(entry.path() / "state.pt")) continue;
    found.emplace_back(std::stoll(name.substr(5)), entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

Progress read_progress(torch::serialize::InputArchive& archive);

}  // namespace

void save_checkpoint(const std::string& run_dir, const Progress& progress, Model& model, const Optimizer& optimizer,
                     const Algorithm& algorithm, int64_t keep) {
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive, algorithm_archive;
  model.save(model_archive);
  optimizer.save(optimizer_archive);
  algorithm.save(algorithm_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("algorithm", algorithm_archive);
  archive.write("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
  if (at::hasCUDA()) {
    archive.write("rng.cuda", at::globalContext().defaultGenerator(c10::DeviceType::CUDA).get_state());
  }
  archive.write("progress.stage", torch::tensor(progress.stage, torch::kLong));
  archive.write("progress.step", torch::tensor(progress.step, torch::kLong));
  archive.write("progress.wall", torch::tensor(progress.wall, torch::kDouble));
  archive.write("progress.loss_scale", torch::tensor(progress.loss_scale, torch::kDouble));
  archive.write("progress.loss_scale_good_steps", torch::tensor(progress.loss_scale_good_steps, torch::kLong));

  fs::path final_dir = fs::path(run_dir) / "checkpoints" / ("step-" + std::to_string(progress.step));
  fs::path temporary = final_dir;
  temporary += ".tmp";
  remove_tree(temporary);
  fs::create_directories(temporary);
  archive.save_to((temporary / "state.pt").string());
  remove_tree(final_dir);
  fs::rename(temporary, final_dir);

  auto all = complete_checkpoints(run_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) remove_tree(all[i].second);
}

Progress load_checkpoint(const std::string& directory, Model& model, Optimizer* optimizer, Algorithm* algorithm) {
  torch::serialize::InputArchive archive, model_archive, optimizer_archive, algorithm_archive;
  archive.load_from((fs::path(directory) / "state.pt").string());
  archive.read("model", model_archive);
  model.load(model_archive);
  if (optimizer) {
    archive.read("optimizer", optimizer_archive);
    optimizer->load(optimizer_archive);
  }
  if (algorithm && archive.try_read("algorithm", algorithm_archive)) algorithm->load(algorithm_archive);
  torch::Tensor state;
  archive.read("rng.cpu", state);
  at::Generator cpu = at::detail::getDefaultCPUGenerator();
  cpu.set_state(state);
  if (at::hasCUDA() && archive.try_read("rng.cuda", state)) {
    at::Generator cuda = at::globalContext().defaultGenerator(c10::DeviceType::CUDA);
    cuda.set_state(state);
  }
  return read_progress(archive);
}

Progress checkpoint_progress(const std::string& directory) {
  torch::serialize::InputArchive archive;
  archive.load_from((fs::path(directory) / "state.pt").string());
  return read_progress(archive);
}

namespace {
Progress read_progress(torch::serialize::InputArchive& archive) {
  torch::Tensor stage, step, wall;
  archive.read("progress.stage", stage);
  archive.read("progress.step", step);
  archive.read("progress.wall", wall);
  Progress progress{stage.item<int64_t>(), step.item<int64_t>(), wall.item<double>()};
  torch::Tensor scale, good;  // absent in checkpoints written before fp16 loss scaling
  if (archive.try_read("progress.loss_scale", scale) && archive.try_read("progress.loss_scale_good_steps", good)) {
    progress.loss_scale = scale.item<double>();
    progress.loss_scale_good_steps = good.item<int64_t>();
  }
  return progress;
}
}  // namespace

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  auto all = complete_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second.string();
}

}  // namespace assay
