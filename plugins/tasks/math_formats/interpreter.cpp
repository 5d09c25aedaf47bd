// The math_formats interpreter: tokens -> lexemes -> a compiled program (statements holding postfix code)
// -> execution on an explicit value stack. The whole module is compiled before anything runs (as Python
// does), so a syntax error anywhere makes the run fail.
#include "interpreter.hpp"

#include <algorithm>
#include <cstddef>
#include <new>
#include <optional>

namespace assay::math_formats {
namespace {

constexpr int kMaxDigits = 18;        // 10^18 - 1 < 2^63: every literal fits an int64
constexpr int kMaxParentheses = 64;   // bounds the parser's recursion

// ---- Lexing ----

enum class Lex { number, name, plus, minus, times, assign, open, close, colon, semicolon, newline, def, ret, print, end };

struct Lexeme {
  Lex kind = Lex::end;
  int64_t value = 0;  // number
  int32_t name = -1;  // name: index into Program::names
};

bool all_digits(const std::string& s) { return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }); }

bool is_identifier(const std::string& s) {
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  return !s.empty() && letter(s[0]) && std::all_of(s.begin(), s.end(), [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

// ---- Compiled program ----

enum class Op : uint8_t { constant, load, call, add, sub, mul };

struct Instruction {
  Op op = Op::constant;
  int64_t value = 0;  // constant
  int32_t name = -1;  // load, call
};

enum class Kind : uint8_t { assign, print, ret, expression, def };

struct Statement {
  Kind kind = Kind::expression;
  int32_t name = -1;      // assign: the variable; def: the function's name
  int32_t function = -1;  // def: index into Program::functions
  std::vector<Instruction> code;
};

struct Program {
  std::vector<std::string> names;
  std::vector<Statement> module;
  std::vector<std::vector<Statement>> functions;  // bodies
};

class Compiler {
 public:
  explicit Compiler(Program& program) : program_(program) {}

  Status compile(const std::vector<std::string>& tokens) {
    if (Status s = lex(tokens); s != Status::ok) return s;
    while (peek() != Lex::end) {
      if (peek() == Lex::semicolon || peek() == Lex::newline) {
        ++at_;
        continue;
      }
      if (peek() == Lex::def) {
        if (!definition()) return Status::syntax_error;
      } else {
        Statement s;
        if (!simple(s, false)) return Status::syntax_error;
        program_.module.push_back(std::move(s));
      }
      if (peek() != Lex::semicolon && peek() != Lex::newline && peek() != Lex::end) return Status::syntax_error;
    }
    return Status::ok;
  }

 private:
  int32_t intern(const std::string& name) {
    auto it = std::find(program_.names.begin(), program_.names.end(), name);
    if (it != program_.names.end()) return static_cast<int32_t>(it - program_.names.begin());
    program_.names.push_back(name);
    return static_cast<int32_t>(program_.names.size() - 1);
  }

  Status lex(const std::vector<std::string>& tokens) {
    for (size_t i = 0; i < tokens.size();) {
      const std::string& t = tokens[i];
      if (all_digits(t)) {  // consecutive digit tokens form one number
        std::string digits;
        for (; i < tokens.size() && all_digits(tokens[i]); ++i) {
          digits += tokens[i];
          if (digits.size() > kMaxDigits) return Status::literal_too_long;
        }
        if (digits.size() > 1 && digits[0] == '0') return Status::syntax_error;
        int64_t value = 0;
        for (char c : digits) value = value * 10 + (c - '0');
        lexemes_.push_back({Lex::number, value, -1});
        continue;
      }
      static const std::pair<std::string_view, Lex> fixed[] = {
          {"+", Lex::plus},  {"-", Lex::minus},     {"*", Lex::times},       {"=", Lex::assign}, {"(", Lex::open},
          {")", Lex::close}, {":", Lex::colon},     {";", Lex::semicolon},   {kNewline, Lex::newline},
          {"def", Lex::def}, {"return", Lex::ret},  {"print", Lex::print}};
      auto it = std::find_if(std::begin(fixed), std::end(fixed), [&](const auto& f) { return f.first == t; });
      if (it != std::end(fixed)) {
        lexemes_.push_back({it->second, 0, -1});
      } else if (is_identifier(t)) {
        lexemes_.push_back({Lex::name, 0, intern(t)});
      } else {
        return Status::syntax_error;
      }
      ++i;
    }
    return Status::ok;
  }

  Lex peek(size_t ahead = 0) const { return at_ + ahead < lexemes_.size() ? lexemes_[at_ + ahead].kind : Lex::end; }
  bool accept(Lex kind) {
    if (peek() != kind) return false;
    ++at_;
    return true;
  }

  // def NAME ( ) : statement (; statement)*   up to the next newline or the end.
  bool definition() {
    ++at_;  // def
    if (peek() != Lex::name) return false;
    Statement binding{Kind::def, lexemes_[at_++].name, static_cast<int32_t>(program_.functions.size()), {}};
    if (!accept(Lex::open) || !accept(Lex::close) || !accept(Lex::colon)) return false;
    std::vector<Statement> body;
    while (peek() != Lex::newline && peek() != Lex::end) {
      if (accept(Lex::semicolon)) continue;
      Statement s;
      if (!simple(s, true)) return false;
      body.push_back(std::move(s));
      if (peek() != Lex::semicolon && peek() != Lex::newline && peek() != Lex::end) return false;
    }
    if (body.empty()) return false;  // "def f ( ) :" with nothing after it on its line
    program_.functions.push_back(std::move(body));
    program_.module.push_back(std::move(binding));
    return true;
  }

  bool simple(Statement& s, bool in_function) {
    if (accept(Lex::print)) {
      s.kind = Kind::print;
      return accept(Lex::open) && expression(s.code, 0) && accept(Lex::close);
    }
    if (accept(Lex::ret)) {
      s.kind = Kind::ret;
      return in_function && expression(s.code, 0);
    }
    if (peek() == Lex::name && peek(1) == Lex::assign) {
      s.kind = Kind::assign;
      s.name = lexemes_[at_].name;
      at_ += 2;
      return expression(s.code, 0);
    }
    s.kind = Kind::expression;
    return expression(s.code, 0);
  }

  // Appends the postfix code of an expression; `depth` counts the enclosing parentheses.
  bool expression(std::vector<Instruction>& code, int depth) {
    if (!term(code, depth)) return false;
    while (peek() == Lex::plus || peek() == Lex::minus) {
      const Op op = lexemes_[at_++].kind == Lex::plus ? Op::add : Op::sub;
      if (!term(code, depth)) return false;
      code.push_back({op, 0, -1});
    }
    return true;
  }

  bool term(std::vector<Instruction>& code, int depth) {
    if (!factor(code, depth)) return false;
    while (accept(Lex::times)) {
      if (!factor(code, depth)) return false;
      code.push_back({Op::mul, 0, -1});
    }
    return true;
  }

  bool factor(std::vector<Instruction>& code, int depth) {
    switch (peek()) {
      case Lex::number:
        code.push_back({Op::constant, lexemes_[at_++].value, -1});
        return true;
      case Lex::name: {
        const int32_t name = lexemes_[at_++].name;
        if (accept(Lex::open)) {
          code.push_back({Op::call, 0, name});
          return accept(Lex::close);
        }
        code.push_back({Op::load, 0, name});
        return true;
      }
      case Lex::open:
        ++at_;
        return depth < kMaxParentheses && expression(code, depth + 1) && accept(Lex::close);
      default:
        return false;
    }
  }

  Program& program_;
  std::vector<Lexeme> lexemes_;
  size_t at_ = 0;
};

// ---- Execution ----

using Variables = std::vector<std::optional<int64_t>>;  // indexed by name

class Machine {
 public:
  Machine(const Program& program, const Limits& limits)
      : program_(program), limits_(limits), globals_(program.names.size()), bound_(program.names.size(), -1) {}

  Status run_module() {
    bool returned = false;
    int64_t ignored = 0;
    return run(program_.module, nullptr, returned, ignored);
  }

  // Calls the function bound to `name`; *out = its return value.
  Status call(int32_t name, int64_t& out) {
    if (name < 0 || bound_[static_cast<size_t>(name)] < 0) return Status::undefined_name;
    if (depth_ >= limits_.max_depth) return Status::depth_limit;
    ++depth_;
    Variables locals(program_.names.size());
    bool returned = false;
    const Status s = run(program_.functions[static_cast<size_t>(bound_[static_cast<size_t>(name)])], &locals, returned, out);
    --depth_;
    if (s != Status::ok) return s;
    return returned ? Status::ok : Status::no_value;  // Python's None: not a number
  }

  const std::optional<int64_t>& last_printed() const { return last_printed_; }

 private:
  Status tick() { return ++steps_ > limits_.max_steps ? Status::step_limit : Status::ok; }

  // Runs statements in the frame `locals` (null = module level); stops at a `return`.
  Status run(const std::vector<Statement>& statements, Variables* locals, bool& returned, int64_t& result) {
    for (const auto& s : statements) {
      if (Status t = tick(); t != Status::ok) return t;
      if (s.kind == Kind::def) {
        bound_[static_cast<size_t>(s.name)] = s.function;
        continue;
      }
      if (s.kind == Kind::expression && s.code.size() == 1 && s.code[0].op == Op::call) {  // `g ( )` alone may return nothing
        int64_t ignored = 0;
        if (Status c = call(s.code[0].name, ignored); c != Status::ok && c != Status::no_value) return c;
        continue;
      }
      int64_t value = 0;
      if (Status e = evaluate(s.code, locals, value); e != Status::ok) return e;
      switch (s.kind) {
        case Kind::assign: (locals ? *locals : globals_)[static_cast<size_t>(s.name)] = value; break;
        case Kind::print: last_printed_ = value; break;
        case Kind::ret:
          returned = true;
          result = value;
          return Status::ok;
        default: break;
      }
    }
    return Status::ok;
  }

  Status evaluate(const std::vector<Instruction>& code, Variables* locals, int64_t& out) {
    std::vector<int64_t> stack;
    stack.reserve(code.size());
    for (const auto& in : code) {
      if (Status t = tick(); t != Status::ok) return t;
      switch (in.op) {
        case Op::constant: stack.push_back(in.value); break;
        case Op::load: {
          const auto n = static_cast<size_t>(in.name);
          const auto& v = locals && (*locals)[n] ? (*locals)[n] : globals_[n];
          if (!v) return Status::undefined_name;
          stack.push_back(*v);
          break;
        }
        case Op::call: {
          int64_t v = 0;
          if (Status s = call(in.name, v); s != Status::ok) return s;
          stack.push_back(v);
          break;
        }
        default: {  // the compiler emits a binary operator only after both of its operands
          const int64_t b = stack.back();
          stack.pop_back();
          int64_t& a = stack.back();
          const bool overflow = in.op == Op::add   ? __builtin_add_overflow(a, b, &a)
                                : in.op == Op::sub ? __builtin_sub_overflow(a, b, &a)
                                                   : __builtin_mul_overflow(a, b, &a);
          if (overflow) return Status::overflow;
        }
      }
    }
    out = stack.back();  // an expression leaves exactly one value
    return Status::ok;
  }

  const Program& program_;
  Limits limits_;
  Variables globals_;
  std::vector<int32_t> bound_;  // function bound to each name, -1 = none
  std::optional<int64_t> last_printed_;
  int64_t steps_ = 0, depth_ = 0;
};

template <class Body>
Outcome guarded(Body body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return {Status::internal_error, 0};
  }
}

}  // namespace

std::string_view status_name(Status status) {
  switch (status) {
    case Status::ok: return "ok";
    case Status::syntax_error: return "syntax_error";
    case Status::undefined_name: return "undefined_name";
    case Status::overflow: return "overflow";
    case Status::literal_too_long: return "literal_too_long";
    case Status::step_limit: return "step_limit";
    case Status::depth_limit: return "depth_limit";
    case Status::no_value: return "no_value";
    case Status::internal_error: return "internal_error";
  }
  return "unknown";
}

Outcome run_printing(const std::vector<std::string>& tokens, const Limits& limits) {
  return guarded([&]() -> Outcome {
    Program program;
    if (Status s = Compiler(program).compile(tokens); s != Status::ok) return {s, 0};
    Machine machine(program, limits);
    if (Status s = machine.run_module(); s != Status::ok) return {s, 0};
    if (!machine.last_printed()) return {Status::no_value, 0};
    return {Status::ok, *machine.last_printed()};
  });
}

Outcome run_calling(const std::vector<std::string>& tokens, std::string_view name, const Limits& limits) {
  return guarded([&]() -> Outcome {
    Program program;
    if (Status s = Compiler(program).compile(tokens); s != Status::ok) return {s, 0};
    const auto it = std::find(program.names.begin(), program.names.end(), name);
    if (it == program.names.end()) return {Status::undefined_name, 0};
    Machine machine(program, limits);
    if (Status s = machine.run_module(); s != Status::ok) return {s, 0};
    int64_t value = 0;
    if (Status s = machine.call(static_cast<int32_t>(it - program.names.begin()), value); s != Status::ok) return {s, 0};
    return {Status::ok, value};
  });
}

}  // namespace assay::math_formats
