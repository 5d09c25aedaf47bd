#pragma once
// A tiny, safe statement language over int64 for math_formats' verifier: it runs the code a model writes.
//
//   module    := statement (SEP statement)*          SEP = ";" or "<nl>"; empty statements are allowed
//   statement := NAME "=" expr | "print" "(" expr ")" | "return" expr (in a function) | expr
//              | "def" NAME "(" ")" ":" body         (module level; body = statements separated by ";" up to
//                                                     the next "<nl>" or the end, as a one-line Python def)
//   expr      := term (("+" | "-") term)*     term := factor ("*" factor)*
//   factor    := NUMBER | NAME | NAME "(" ")" | "(" expr ")"
//
// NUMBER: one or more consecutive digit tokens ("1" "7" = 17), at most 18 digits, no leading zero. Variables
// and functions live in separate namespaces; a function reads its own variables, then the module's. A `def`
// binds its function when it runs, so a body may call itself (unbounded recursion, caught by the limits).
// Safety: every statement and every instruction counts one step against Limits::max_steps, calls nest at
// most Limits::max_depth deep, arithmetic is checked for int64 overflow, parentheses nest at most 64 deep,
// and evaluation uses an explicit stack, so no input can crash, hang or exhaust the C++ stack. No I/O.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace assay::math_formats {

/// The token that ends a line (what Python's newline is to the code formats).
inline constexpr std::string_view kNewline = "<nl>";

enum class Status {
  ok,
  syntax_error,       ///< tokens the grammar does not accept (an unknown token, a missing ")", "def" without a body, ...)
  undefined_name,     ///< a variable read before it is assigned, or a call of a function not (yet) defined
  overflow,           ///< an int64 addition, subtraction or multiplication overflowed
  literal_too_long,   ///< a number of more than 18 digits
  step_limit,         ///< more than Limits::max_steps statements and instructions
  depth_limit,        ///< calls nested more than Limits::max_depth deep (e.g. `def f ( ) : return f ( )`)
  no_value,           ///< nothing printed (run_printing), or the function ended without `return` (or its value was used)
  internal_error,     ///< an allocation failed; never expected
};

/// "ok", "syntax_error", ...
std::string_view status_name(Status status);

struct Limits {
  int64_t max_steps = 10000;  ///< statements plus instructions executed in one run, calls included
  int64_t max_depth = 16;     ///< nested calls
};

struct Outcome {
  Status status = Status::ok;
  int64_t value = 0;  ///< the result when status == ok
  bool ok() const { return status == Status::ok; }
};

/// Runs `tokens` as a module; the result is the last value printed. Never throws.
Outcome run_printing(const std::vector<std::string>& tokens, const Limits& limits = {});

/// Runs `tokens` as a module, then calls function `name` with no arguments; the result is what it returns
/// (its prints are ignored). Never throws.
Outcome run_calling(const std::vector<std::string>& tokens, std::string_view name, const Limits& limits = {});

}  // namespace assay::math_formats
