#include "registry.hpp"

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

namespace fs = std::filesystem;

namespace assay {
namespace {

// "2.11.0a0+git..." -> "2.11"
std::string major_minor(std::string_view version) {
  auto first = version.find('.');
  if (first == std::string_view::npos) return std::string(version);
  auto second = version.find_first_not_of("0123456789", first + 1);
  return std::string(version.substr(0, second));
}

constexpr const char* kRebuildHint =
    "rebuild the plugin against this assay installation (cmake -DCMAKE_PREFIX_PATH=<assay prefix> with "
    "find_package(assay) and assay_add_plugin), or remove it from the plugin search path";

}  // namespace

Registry::Registry() = default;
Registry::~Registry() = default;

std::vector<std::string> Registry::search_path(const std::vector<std::string>& extra) {
  std::vector<std::string> dirs(extra);
  if (const char* env = std::getenv("ASSAY_PLUGIN_PATH")) {
    std::string_view rest(env);
    while (!rest.empty()) {
      auto colon = rest.find(':');
      auto part = rest.substr(0, colon);
      if (!part.empty()) dirs.emplace_back(part);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  // libassay.so lives in <prefix>/lib, plugins in <prefix>/lib/assay/plugins (build tree alike).
  fs::path installed = boost::dll::this_line_location().parent_path() / "assay" / "plugins";
  if (fs::is_directory(installed)) {
    dirs.push_back(installed.string());
  } else {
    dirs.emplace_back(ASSAY_BUILD_PLUGIN_DIR);
  }
  return dirs;
}

void Registry::load_directories(const std::vector<std::string>& dirs) {
  std::set<fs::path> seen;
  for (const auto& dir : dirs) {
    std::error_code ec;
    fs::path canonical = fs::canonical(dir, ec);
    if (ec || !fs::is_directory(canonical) || !seen.insert(canonical).second) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(canonical)) {
      const auto name = entry.path().filename().string();
      if (entry.is_regular_file() && name.starts_with("assay-") && name.ends_with(".so")) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) load_file(file.string());
  }
}

void Registry::load_file(const std::string& path) {
  auto library = std::make_shared<boost::dll::shared_library>();
  try {
    library->load(path, boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginError(path + ": cannot be loaded (" + e.what() + "); " + kRebuildHint);
  }
  if (!library->has("assay_plugin_manifest")) {
    throw PluginError(path + ": not an assay plugin (it exports no assay_plugin_manifest)");
  }
  const auto* manifest = library->get<const assay_manifest*()>("assay_plugin_manifest")();
  const std::string plugin = manifest->name ? manifest->name : "?";
  if (manifest->sdk_abi != ASSAY_SDK_ABI) {
    throw PluginError(path + ": plugin '" + plugin + "' was built against assay SDK ABI " +
                      std::to_string(manifest->sdk_abi) + " (assay " + manifest->sdk_version +
                      "), but this host has SDK ABI " + std::to_string(ASSAY_SDK_ABI) + " (assay " +
                      ASSAY_VERSION + "); " + kRebuildHint);
  }
  if (major_minor(manifest->torch_version) != major_minor(TORCH_VERSION)) {
    throw PluginError(path + ": plugin '" + plugin + "' was built against LibTorch " + manifest->torch_version +
                      ", but this host runs LibTorch " + TORCH_VERSION + "; " + kRebuildHint);
  }
  if (manifest->cxx11_abi != _GLIBCXX_USE_CXX11_ABI) {
    throw PluginError(path + ": plugin '" + plugin + "' was built with _GLIBCXX_USE_CXX11_ABI=" +
                      std::to_string(manifest->cxx11_abi) + ", but this host uses " +
                      std::to_string(_GLIBCXX_USE_CXX11_ABI) + "; " + kRebuildHint);
  }

  auto record = std::make_unique<PluginRecord>(PluginRecord{path, plugin, manifest->version, manifest->sdk_version,
                                                             manifest->torch_version, manifest->compiler});
  Plugin collected;
  manifest->register_components(&collected);
  for (auto& info : collected.components) {
    if (const auto* existing = find(info.kind, info.name)) {
      throw PluginError("duplicate " + std::string(kind_name(info.kind)) + " '" + info.name + "': provided by " +
                        existing->plugin->path + " and by " + path + "; remove one from the plugin search path");
    }
    components_.push_back(std::make_unique<LoadedComponent>(LoadedComponent{library, std::move(info), record.get()}));
  }
  plugins_.push_back(std::move(record));
}

const LoadedComponent* Registry::find(Kind kind, std::string_view name) const {
  for (const auto& c : components_) {
    if (c->info.kind == kind && c->info.name == name) return c.get();
  }
  return nullptr;
}

std::vector<std::string> Registry::names(Kind kind) const {
  std::vector<std::string> out;
  for (const auto& c : components_) {
    if (c->info.kind == kind) out.push_back(c->info.name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const LoadedComponent* Registry::require(Kind kind, std::string_view name) const {
  if (const auto* c = find(kind, name)) return c;
  std::string message = "unknown " + std::string(kind_name(kind)) + " '" + std::string(name) + "'";
  if (auto guess = closest(name, names(kind)); !guess.empty()) message += "; did you mean '" + guess + "'?";
  throw PluginError(message);
}

std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  auto distance = [](std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = above;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    size_t d = distance(word, candidate);
    if (d < best_distance) best = candidate, best_distance = d;
  }
  return best;
}

}  // namespace assay
