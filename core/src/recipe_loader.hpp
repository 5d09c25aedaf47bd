#pragma once
// Reading recipe TOML with positions: extends, overrides, typed validation against schemas. Shared by
// recipes (recipe.cpp) and sweeps (sweep.cpp); internal to the host.
#include "recipe.hpp"
#include "registry.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>

namespace assay::recipe_detail {

namespace fs = std::filesystem;

constexpr const char* kOverrideSource = "<command line>";

/// Collects problems and reads/merges TOML with source positions intact.
class Loader {
 public:
  explicit Loader(const Registry& registry) : registry_(registry) {}

  std::vector<std::string> problems;

  void problem(const toml::node* node, const std::string& key, const std::string& message) {
    problem(node ? &node->source() : nullptr, key, message);
  }
  void problem(const toml::source_region* source, const std::string& key, const std::string& message) {
    problems.push_back(where(source) + key + (key.empty() ? "" : ": ") + message);
  }

  std::string where(const toml::source_region* source) const {
    if (source && source->path && *source->path == kOverrideSource) return "command line: ";
    if (source && source->path) {
      return *source->path + ":" + std::to_string(source->begin.line) + ":" + std::to_string(source->begin.column) + ": ";
    }
    return root_file_ + ": ";
  }

  toml::table read(const fs::path& path, std::vector<fs::path>& chain) {
    if (chain.empty()) root_file_ = path.string();
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(path, ec);
    if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
      std::string cycle;
      for (const auto& file : chain) cycle += file.filename().string() + " -> ";
      problems.push_back(chain.front().string() + ": extends cycle: " + cycle + path.filename().string());
      return {};
    }
    if (!fs::is_regular_file(path)) {
      problems.push_back(path.string() + ": no such recipe file");
      return {};
    }
    toml::table table;
    try {
      table = toml::parse_file(path.string());
    } catch (const toml::parse_error& e) {
      const auto& at = e.source();
      problems.push_back(path.string() + ":" + std::to_string(at.begin.line) + ":" + std::to_string(at.begin.column) +
                         ": TOML syntax error: " + std::string(e.description()));
      return {};
    }
    chain.push_back(canonical);
    if (const toml::node* extends = table.get("extends")) {
      if (!extends->is_string()) {
        problem(extends, "extends", "expected a string (path of the base recipe, relative to this file)");
        return table;
      }
      fs::path base = path.parent_path() / extends->as_string()->get();
      table.erase("extends");
      toml::table merged = read(base, chain);
      merge(merged, std::move(table));
      return merged;
    }
    return table;
  }

  /// Deep merge: tables merge key by key, anything else (arrays of tables included) replaces.
  static void merge(toml::table& into, toml::table&& from) {
    for (auto&& [key, node] : from) {
      toml::node* existing = into.get(key.str());
      if (existing && existing->is_table() && node.is_table()) {
        merge(*existing->as_table(), std::move(*node.as_table()));
      } else {
        node.visit([&, &k = key](auto&& concrete) { into.insert_or_assign(k, std::move(concrete)); });
      }
    }
  }

  void apply_override(toml::table& root, const std::string& text) {
    auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
      problems.push_back("command line: '" + text + "': expected key=value, e.g. optimizer.lr=1e-3");
      return;
    }
    const std::string key = text.substr(0, eq), raw = text.substr(eq + 1);
    // Dotted path; a "quoted" segment may contain dots: sweep.axes."optimizer.lr"=[1e-3, 1e-2]
    std::vector<std::string> parts(1);
    bool quoted = false;
    for (char c : key) {
      if (c == '"') quoted = !quoted;
      else if (c == '.' && !quoted) parts.emplace_back();
      else parts.back() += c;
    }
    // A value that is not TOML (task.use=count) is taken as a string.
    toml::table parsed;
    try {
      parsed = toml::parse("v = " + raw, std::string_view(kOverrideSource));
    } catch (const toml::parse_error&) {
      parsed = toml::parse("v = " + to_toml(raw), std::string_view(kOverrideSource));
    }
    toml::node* at = &root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const auto& part = parts[i];
      if (auto* array = at->as_array()) {
        size_t index = 0;
        if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos ||
            (index = std::stoul(part)) >= array->size()) {
          problems.push_back("command line: '" + text + "': '" + part + "' is not an index of " +
                             std::to_string(array->size()) + " entries");
          return;
        }
        at = array->get(index);
        continue;
      }
      auto* table = at->as_table();
      if (!table) {
        problems.push_back("command line: '" + text + "': '" + part + "' is not a table");
        return;
      }
      if (!table->contains(part)) {  // a table created from the command line, positioned there
        toml::table made = toml::parse("v = {}", std::string_view(kOverrideSource));
        table->insert(part, std::move(*made.get("v")->as_table()));
      }
      at = table->get(part);
    }
    auto* table = at->as_table();
    if (!table) {
      problems.push_back("command line: '" + text + "': cannot set a key inside a non-table");
      return;
    }
    parsed.get("v")->visit([&](auto&& concrete) { table->insert_or_assign(parts.back(), std::move(concrete)); });
  }

  static std::string got(const toml::node& node) {
    std::ostringstream out;
    node.visit([&](auto&& v) {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, toml::table>) out << "a table";
      else if constexpr (std::is_same_v<T, toml::array>) out << "an array " << v;
      else if constexpr (std::is_same_v<T, toml::value<std::string>>) out << "string \"" << v.get() << "\"";
      else if constexpr (std::is_same_v<T, toml::value<bool>>) out << "boolean " << v;
      else if constexpr (std::is_same_v<T, toml::value<int64_t>>) out << "integer " << v;
      else if constexpr (std::is_same_v<T, toml::value<double>>) out << "float " << v;
      else out << v;
    });
    return out.str();
  }

  static std::string expected(const Param& param) { return "expected " + describe_type(param); }

  /// Converts one node to the parameter's type, or reports why not.
  std::optional<Value> convert(const toml::node& node, const Param& param, const std::string& key) {
    auto scalar = [&](const toml::node& n, Type type) -> std::optional<Value> {
      switch (type) {
        case Type::boolean: if (auto v = n.value_exact<bool>()) return *v; break;
        case Type::integer: if (auto v = n.value_exact<int64_t>()) return *v; break;
        case Type::real:
          if (n.is_floating_point()) return n.as_floating_point()->get();
          if (n.is_integer()) return static_cast<double>(n.as_integer()->get());
          break;
        case Type::string: if (auto v = n.value_exact<std::string>()) return *v; break;
        default: break;
      }
      return std::nullopt;
    };
    auto in_range = [&](double x) { return (!param.min || x >= *param.min) && (!param.max || x <= *param.max); };
    auto allowed = [&](const std::string& s) {
      return param.choices.empty() || std::find(param.choices.begin(), param.choices.end(), s) != param.choices.end();
    };
    auto fail = [&]() -> std::optional<Value> {
      problem(&node, key, expected(param) + ", got " + got(node));
      return std::nullopt;
    };
    const bool is_list = param.type == Type::integer_list || param.type == Type::real_list || param.type == Type::string_list;
    if (!is_list) {
      auto value = scalar(node, param.type);
      if (!value) return fail();
      if (auto* i = std::get_if<int64_t>(&*value); i && !in_range(static_cast<double>(*i))) return fail();
      if (auto* d = std::get_if<double>(&*value); d && !in_range(*d)) return fail();
      if (auto* s = std::get_if<std::string>(&*value); s && !allowed(*s)) return fail();
      return value;
    }
    const auto* array = node.as_array();
    if (!array) return fail();
    const Type element = param.type == Type::integer_list ? Type::integer
                         : param.type == Type::real_list  ? Type::real
                                                          : Type::string;
    std::vector<int64_t> ints;
    std::vector<double> reals;
    std::vector<std::string> strings;
    for (const auto& item : *array) {
      auto value = scalar(item, element);
      if (!value) return fail();
      if (auto* i = std::get_if<int64_t>(&*value)) {
        if (!in_range(static_cast<double>(*i))) return fail();
        ints.push_back(*i);
      } else if (auto* d = std::get_if<double>(&*value)) {
        if (!in_range(*d)) return fail();
        reals.push_back(*d);
      } else {
        auto& s = std::get<std::string>(*value);
        if (!allowed(s)) return fail();
        strings.push_back(s);
      }
    }
    if (element == Type::integer) return ints;
    if (element == Type::real) return reals;
    return strings;
  }

  /// Validates `table` against `schema`; keys not in the table take their value from `base`, else the default.
  Values validate(const toml::table& table, const Schema& schema, const std::string& prefix,
                  const std::set<std::string>& also_allowed, const Values* base, const std::string& owner) {
    Values values;
    for (const auto& param : schema) {
      if (base) {
        if (auto it = base->find(param.name); it != base->end()) values[param.name] = it->second;
      }
      if (!values.count(param.name)) values[param.name] = param.default_value;
    }
    std::vector<std::string> valid;
    for (const auto& param : schema) valid.push_back(param.name);
    for (const auto& key : also_allowed) {
      if (key != "model") valid.push_back(key);  // skipped here, but rejected on its own
    }
    for (auto&& [k, node] : table) {
      const std::string key(k.str());
      if (also_allowed.count(key)) continue;
      auto param = std::find_if(schema.begin(), schema.end(), [&](const Param& p) { return p.name == key; });
      if (param == schema.end()) {
        std::string message = "unknown key for " + owner;
        if (auto guess = closest(key, valid); !guess.empty()) message += "; did you mean '" + guess + "'?";
        std::string list;
        for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
        // Keys set on the command line have no position of their own; their value does.
        problem(k.source().path ? &k.source() : &node.source(), prefix + key, message + " (valid keys: " + list + ")");
        continue;
      }
      if (auto value = convert(node, *param, prefix + key)) values[key] = std::move(*value);
    }
    return values;
  }

  /// A component table: `use` picks the component, the other keys are its parameters.
  std::optional<ComponentSpec> component(const toml::node* node, Kind kind, const std::string& table_name,
                                         const std::string& default_use, const ComponentSpec* inherited) {
    const std::string kind_text(kind_name(kind));
    if (!node) {
      if (inherited) return *inherited;
      if (default_use.empty()) {
        problems.push_back(root_file_ + ": missing [" + table_name + "] table (which " + kind_text + " to use)");
        return std::nullopt;
      }
      static const toml::table empty;
      node = &empty;
    }
    const auto* table = node->as_table();
    if (!table) {
      problem(node, table_name, "expected a table with use = \"<" + kind_text + " name>\", got " + got(*node));
      return std::nullopt;
    }
    std::string use = inherited ? inherited->use : default_use;
    const toml::node* use_node = table->get("use");
    if (use_node) {
      if (!use_node->is_string()) {
        problem(use_node, table_name + ".use", "expected the name of a " + kind_text + ", got " + got(*use_node));
        return std::nullopt;
      }
      use = use_node->as_string()->get();
    }
    if (use.empty()) {
      problem(node, table_name + ".use", "missing: which " + kind_text + " to use (" + available(kind) + ")");
      return std::nullopt;
    }
    const LoadedComponent* found = registry_.find(kind, use);
    if (!found) {
      std::string message = "unknown " + kind_text + " '" + use + "'";
      if (auto guess = closest(use, registry_.names(kind)); !guess.empty()) message += "; did you mean '" + guess + "'?";
      problem(use_node ? use_node : node, table_name + ".use", message + " (" + available(kind) + ")");
      return std::nullopt;
    }
    const bool same = inherited && inherited->use == use;
    const bool grouped = kind == Kind::optimizer || kind == Kind::precision;
    ComponentSpec spec{kind, use, {}, table_name, {}};
    // precision: [[precision.switch]] entries are read by precision_switches().
    std::set<std::string> allowed = {"use"};
    if (grouped) allowed.insert("groups");
    if (kind == Kind::precision) allowed.insert("switch");
    spec.values = validate(*table, found->info.schema, table_name + ".", allowed,
                           same ? &inherited->values : nullptr, kind_text + " '" + use + "'");
    if (same) spec.group_overrides = inherited->group_overrides;
    if (const toml::node* groups = grouped ? table->get("groups") : nullptr) {
      spec.group_overrides.clear();
      if (!groups->is_table()) {
        problem(groups, table_name + ".groups", "expected tables [" + table_name + ".groups.<parameter group>]");
      } else {
        for (auto&& [name, group] : *groups->as_table()) {
          const std::string where = table_name + ".groups." + std::string(name.str());
          if (!group.is_table()) {
            problem(&group, where, "expected a table of " + kind_text + " parameters for this parameter group");
            continue;
          }
          Values all = validate(*group.as_table(), found->info.schema, where + ".", {}, nullptr,
                                kind_text + " '" + use + "' (per-group)");
          Values set;  // only what the group table sets; the rest follows the component's values
          for (auto&& [key, node] : *group.as_table()) {
            if (auto it = all.find(key.str()); it != all.end()) set[it->first] = it->second;
          }
          spec.group_overrides[std::string(name.str())] = std::move(set);
        }
      }
    }
    return spec;
  }

  /// The [[<table_name>.switch]] entries of a precision table `node`: each an at_step and a precision table
  /// inheriting from `base` (when it uses the same scheme). Steps are checked against the stage later.
  std::vector<PrecisionSwitch> precision_switches(const toml::node* node, const std::string& table_name,
                                                  const ComponentSpec& base) {
    std::vector<PrecisionSwitch> out;
    const auto* table = node ? node->as_table() : nullptr;
    const toml::node* list = table ? table->get("switch") : nullptr;
    if (!list) return out;
    const auto* array = list->as_array();
    if (!array || !array->is_array_of_tables()) {
      problem(list, table_name + ".switch", "expected [[" + table_name + ".switch]] tables, each with at_step and the "
              "scheme to change to");
      return out;
    }
    for (size_t i = 0; i < array->size(); ++i) {
      const std::string where = table_name + ".switch[" + std::to_string(i) + "]";
      toml::table entry = *array->get(i)->as_table();
      const toml::node* at = entry.get("at_step");
      const auto step = at ? at->value_exact<int64_t>() : std::nullopt;
      if (!step || *step < 1) {
        problem(at ? at : array->get(i), where + ".at_step",
                "expected the global step (an integer >= 1) from which this scheme applies" + (at ? ", got " + got(*at) : ""));
        continue;
      }
      if (entry.contains("switch")) problem(entry.get("switch"), where + ".switch", "a switch cannot hold switches");
      entry.erase("at_step");
      entry.erase("switch");
      auto spec = component(&entry, Kind::precision, where, "", &base);
      if (spec) out.push_back({*step, std::move(*spec)});
    }
    return out;
  }

  std::string available(Kind kind) const {
    std::string list;
    for (const auto& name : registry_.names(kind)) list += (list.empty() ? "" : ", ") + name;
    return list.empty() ? "no " + std::string(kind_name(kind)) + " plugins found" : "available: " + list;
  }

  std::vector<ComponentSpec> analyzers(const toml::node* node, const std::string& table_name) {
    std::vector<ComponentSpec> out;
    if (!node) return out;
    const auto* array = node->as_array();
    if (!array) {
      problem(node, table_name, "expected an array of tables ([[" + table_name + "]] with use = \"<name>\")");
      return out;
    }
    for (size_t i = 0; i < array->size(); ++i) {
      if (auto spec = component(array->get(i), Kind::analyzer, table_name + "[" + std::to_string(i) + "]", "", nullptr)) {
        out.push_back(std::move(*spec));
      }
    }
    return out;
  }

  const std::string& root_file() const { return root_file_; }

 private:
  const Registry& registry_;
  std::string root_file_;
};


}  // namespace assay::recipe_detail
