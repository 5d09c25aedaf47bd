#pragma once
/// @file Declaring a plugin and registering its components.
///
/// In exactly one source file of the plugin:
///
///     ASSAY_PLUGIN("modular_addition", "1.0.0") {
///       plugin.add<ModularAddition>("modular_addition", "(a + b) mod p over pairs of residues");
///     }
///
/// Build it with `assay_add_plugin(NAME SOURCES ...)` from `find_package(assay)`.
#include <assay/components.hpp>
#include <assay/version.hpp>

#include <torch/version.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace assay { class Plugin; }

extern "C" {
/// What the host reads first from a plugin, before running any of its C++ code (nothing runs at load
/// time: components are registered by `register_components`, called only once these fields match the
/// host's). Plain C so that a plugin built against another SDK or LibTorch is refused with a message.
struct assay_manifest {
  uint32_t sdk_abi;           ///< ASSAY_SDK_ABI the plugin was built against
  const char* sdk_version;    ///< ASSAY_VERSION the plugin was built against
  const char* torch_version;  ///< LibTorch version the plugin was built against
  int32_t cxx11_abi;          ///< _GLIBCXX_USE_CXX11_ABI
  const char* compiler;       ///< compiler id and version
  const char* name;           ///< plugin name
  const char* version;        ///< plugin version
  void (*register_components)(assay::Plugin*);  ///< the body of ASSAY_PLUGIN
};
}

namespace assay {

/// One registered component: what the host validates a recipe table against and builds from it.
struct ComponentInfo {
  Kind kind;
  std::string name;
  std::string doc;
  Schema schema;
  /// Builds the component from validated values; the caller owns the result.
  std::function<Component*(const Values&, const Context&)> create;
};

/// Collects a plugin's components (the `plugin` in an ASSAY_PLUGIN body).
class Plugin {
 public:
  /// Registers class C (derived from one of the kind interfaces, with a nested Options struct and a
  /// constructor C(const C::Options&, const Context&)) as component `name`.
  template <class C>
  void add(std::string name, std::string doc) {
    components.push_back(ComponentInfo{C::kind, std::move(name), std::move(doc), schema_of<typename C::Options>(),
                                       [](const Values& values, const Context& context) -> Component* {
                                         return new C(options_from<typename C::Options>(values), context);
                                       }});
  }
  std::vector<ComponentInfo> components;
};

}  // namespace assay

#if defined(__clang__)
#define ASSAY_COMPILER_ID "clang " __clang_version__
#else
#define ASSAY_COMPILER_ID "gcc " __VERSION__
#endif

/// Declares a plugin and exports its manifest; the braces that follow register its components:
///
///     ASSAY_PLUGIN("sgd", "1.0.0") { plugin.add<Sgd>("sgd", "stochastic gradient descent"); }
#define ASSAY_PLUGIN(plugin_name, plugin_version)                                             \
  static void assay_register_components(::assay::Plugin& plugin);                             \
  static void assay_register_components_c(::assay::Plugin* plugin) {                          \
    assay_register_components(*plugin);                                                       \
  }                                                                                            \
  extern "C" __attribute__((visibility("default"))) const assay_manifest*              \
  assay_plugin_manifest() {                                                                    \
    static const assay_manifest manifest{                                              \
        ASSAY_SDK_ABI,     ASSAY_VERSION, TORCH_VERSION,  _GLIBCXX_USE_CXX11_ABI,              \
        ASSAY_COMPILER_ID, plugin_name,   plugin_version, &assay_register_components_c};      \
    return &manifest;                                                                          \
  }                                                                                            \
  static void assay_register_components(::assay::Plugin& plugin)
