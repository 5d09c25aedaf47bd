#include <assay/options.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace assay {

std::string type_name(Type type) {
  switch (type) {
    case Type::boolean: return "boolean";
    case Type::integer: return "integer";
    case Type::real: return "float";
    case Type::string: return "string";
    case Type::integer_list: return "list of integers";
    case Type::real_list: return "list of floats";
    case Type::string_list: return "list of strings";
  }
  return "?";
}

namespace {
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}
std::string real(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (std::isnan(x)) return "nan";
  char buf[64];
  auto end = std::to_chars(buf, buf + sizeof buf, x).ptr;  // shortest text that reads back as x
  std::string s(buf, end);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";  // keep it a TOML float
  return s;
}
template <class T, class F>
std::string list(const std::vector<T>& items, F&& element) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + element(items[i]);
  return out + "]";
}
}  // namespace

std::string to_toml(const Value& value) {
  struct {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return real(d); }
    std::string operator()(const std::string& s) const { return quote(s); }
    std::string operator()(const std::vector<int64_t>& v) const {
      return list(v, [](int64_t i) { return std::to_string(i); });
    }
    std::string operator()(const std::vector<double>& v) const { return list(v, real); }
    std::string operator()(const std::vector<std::string>& v) const { return list(v, quote); }
  } visitor;
  return std::visit(visitor, value);
}

std::string describe_type(const Param& param) {
  const bool integral = param.type == Type::integer || param.type == Type::integer_list;
  auto bound = [&](double x) { return integral ? std::to_string(static_cast<int64_t>(x)) : real(x); };
  std::string text = type_name(param.type);
  if (param.min && param.max) {
    text += " in [" + bound(*param.min) + ", " + bound(*param.max) + "]";
  } else if (param.min) {
    text += " >= " + bound(*param.min);
  } else if (param.max) {
    text += " <= " + bound(*param.max);
  }
  if (!param.choices.empty()) {
    text += ", one of:";
    for (const auto& c : param.choices) text += " " + quote(c);
  }
  return text;
}

template <class T>
Fields::Spec Fields::visit(std::string_view key, T& field, Type type, std::string_view doc) {
  if (values_) {
    if (auto it = values_->find(key); it != values_->end()) {
      if constexpr (std::is_same_v<T, int>) {
        field = static_cast<int>(std::get<int64_t>(it->second));
      } else {
        field = std::get<T>(it->second);
      }
    }
    return Spec(nullptr);
  }
  Param param;
  param.name = std::string(key);
  param.type = type;
  if constexpr (std::is_same_v<T, int>) {
    param.default_value = static_cast<int64_t>(field);
  } else {
    param.default_value = field;
  }
  param.doc = std::string(doc);
  schema_.push_back(std::move(param));
  return Spec(&schema_.back());
}

Fields::Spec Fields::operator()(std::string_view k, bool& f, std::string_view d) { return visit(k, f, Type::boolean, d); }
Fields::Spec Fields::operator()(std::string_view k, int& f, std::string_view d) { return visit(k, f, Type::integer, d); }
Fields::Spec Fields::operator()(std::string_view k, int64_t& f, std::string_view d) { return visit(k, f, Type::integer, d); }
Fields::Spec Fields::operator()(std::string_view k, double& f, std::string_view d) { return visit(k, f, Type::real, d); }
Fields::Spec Fields::operator()(std::string_view k, std::string& f, std::string_view d) { return visit(k, f, Type::string, d); }
Fields::Spec Fields::operator()(std::string_view k, std::vector<int64_t>& f, std::string_view d) {
  return visit(k, f, Type::integer_list, d);
}
Fields::Spec Fields::operator()(std::string_view k, std::vector<double>& f, std::string_view d) {
  return visit(k, f, Type::real_list, d);
}
Fields::Spec Fields::operator()(std::string_view k, std::vector<std::string>& f, std::string_view d) {
  return visit(k, f, Type::string_list, d);
}

}  // namespace assay
