#pragma once
/// @file Component parameters: one Options struct per component whose field names are the TOML keys.
///
/// A component declares its parameters once, in a struct with defaults beside the fields and a
/// `fields` function naming each field's key, doc and constraints:
///
///     struct Options {
///       int64_t p = 31;              // default lives here
///       double train_fraction = 1.0;
///       void fields(assay::Fields& f) {
///         f("p", p, "prime modulus").range(3, 10007);
///         f("train_fraction", train_fraction, "share of all (a, b) pairs used for training").range(0, 1);
///       }
///     };
///
/// The host turns that into a Schema (for validation, `assay plugins` and the resolved-recipe printout)
/// and, after validating a recipe table against it, fills an Options from the recipe's values.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace assay {

/// Parameter types a recipe can hold.
enum class Type { boolean, integer, real, string, integer_list, real_list, string_list };

/// A parameter value as read from a recipe.
using Value = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>,
                           std::vector<std::string>>;

/// Resolved values of one component table, keyed by parameter name.
using Values = std::map<std::string, Value, std::less<>>;

/// One declared parameter: what the host validates a recipe key against.
struct Param {
  std::string name;
  Type type = Type::real;
  Value default_value;
  std::optional<double> min, max;    ///< inclusive bounds (numbers, and every element of a list)
  std::vector<std::string> choices;  ///< allowed strings; empty = any
  std::string doc;
};
using Schema = std::vector<Param>;

/// "integer", "list of reals", ...: how errors and `assay plugins` name a type.
std::string type_name(Type type);
/// TOML spelling of a value: 3, 0.001, "adamw", [1, 2].
std::string to_toml(const Value& value);
/// "integer in [2, 4096]", "float >= 0, one of: ...": what a parameter accepts.
std::string describe_type(const Param& param);

/// The visitor an Options struct's `fields(Fields&)` is called with. It either records the schema
/// (reading defaults from the freshly constructed struct) or assigns validated values to the fields.
class Fields {
 public:
  /// Constraints on the field just declared; ignored when assigning.
  class Spec {
   public:
    explicit Spec(Param* param) : param_(param) {}
    Spec& range(double lo, double hi) { return min(lo).max(hi); }
    Spec& min(double lo) { if (param_) param_->min = lo; return *this; }
    Spec& max(double hi) { if (param_) param_->max = hi; return *this; }
    Spec& choices(std::vector<std::string> allowed) { if (param_) param_->choices = std::move(allowed); return *this; }
   private:
    Param* param_;
  };

  /// Records a schema.
  Fields() = default;
  /// Assigns `values` (already validated by the host; missing keys keep their defaults).
  explicit Fields(const Values& values) : values_(&values) {}

  Spec operator()(std::string_view key, bool& field, std::string_view doc);
  Spec operator()(std::string_view key, int& field, std::string_view doc);
  Spec operator()(std::string_view key, int64_t& field, std::string_view doc);
  Spec operator()(std::string_view key, double& field, std::string_view doc);
  Spec operator()(std::string_view key, std::string& field, std::string_view doc);
  Spec operator()(std::string_view key, std::vector<int64_t>& field, std::string_view doc);
  Spec operator()(std::string_view key, std::vector<double>& field, std::string_view doc);
  Spec operator()(std::string_view key, std::vector<std::string>& field, std::string_view doc);

  const Schema& schema() const { return schema_; }

 private:
  template <class T>
  Spec visit(std::string_view key, T& field, Type type, std::string_view doc);
  const Values* values_ = nullptr;
  Schema schema_;
};

/// The schema of an Options struct (defaults taken from a default-constructed one).
template <class Options>
Schema schema_of() {
  Options options;
  Fields fields;
  options.fields(fields);
  return fields.schema();
}

/// An Options struct filled from validated values.
template <class Options>
Options options_from(const Values& values) {
  Options options;
  Fields fields(values);
  options.fields(fields);
  return options;
}

}  // namespace assay
