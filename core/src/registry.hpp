#pragma once
// Plugin discovery and loading (host side).
#include <assay/plugin.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace boost::dll { class shared_library; }

namespace assay {

/// A plugin could not be loaded or conflicts with another; the message says which file and the fix.
struct PluginError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A loaded plugin file.
struct PluginRecord {
  std::string path, name, version, sdk_version, torch_version, compiler;
};

/// A component together with the library that holds its code.
struct LoadedComponent {
  std::shared_ptr<boost::dll::shared_library> library;  // declared first: destroyed after `info`
  ComponentInfo info;
  const PluginRecord* plugin = nullptr;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Directories searched, in order: `extra` (--plugins), $ASSAY_PLUGIN_PATH (':'-separated), the
  /// install prefix's lib/assay/plugins next to the running binary, else the build tree's plugin folder.
  static std::vector<std::string> search_path(const std::vector<std::string>& extra);

  /// Loads every assay-*.so in `dirs` (missing directories are skipped). Throws PluginError.
  void load_directories(const std::vector<std::string>& dirs);
  /// Loads one plugin file. Throws PluginError on a version mismatch or a duplicate component name.
  void load_file(const std::string& path);

  const LoadedComponent* find(Kind kind, std::string_view name) const;
  std::vector<std::string> names(Kind kind) const;
  const std::vector<std::unique_ptr<LoadedComponent>>& components() const { return components_; }
  const std::vector<std::unique_ptr<PluginRecord>>& plugins() const { return plugins_; }

  /// Builds component `name` of T's kind. The returned object keeps its library loaded.
  template <class T>
  std::shared_ptr<T> create(std::string_view name, const Values& values, const Context& context) const {
    const LoadedComponent* c = require(T::kind, name);
    Component* raw = c->info.create(values, context);
    T* typed = dynamic_cast<T*>(raw);
    if (!typed) {
      delete raw;
      throw PluginError("component '" + std::string(name) + "' does not implement the " +
                        std::string(kind_name(T::kind)) + " interface");
    }
    return std::shared_ptr<T>(typed, [library = c->library](T* p) { delete p; });
  }

 private:
  const LoadedComponent* require(Kind kind, std::string_view name) const;
  std::vector<std::unique_ptr<PluginRecord>> plugins_;
  std::vector<std::unique_ptr<LoadedComponent>> components_;
};

/// Levenshtein-closest of `candidates` to `word`, or "" when none is reasonably close.
std::string closest(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace assay
