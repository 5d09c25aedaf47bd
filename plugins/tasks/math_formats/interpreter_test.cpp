#include "interpreter.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

namespace assay::math_formats {
namespace {

// "a = 1 <nl> print ( a )" -> {"a", "=", "1", "<nl>", "print", "(", "a", ")"}.
std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0, end; start < text.size(); start = end + 1) {
    end = std::min(text.find(' ', start), text.size());
    if (end > start) out.push_back(text.substr(start, end - start));
  }
  return out;
}

Outcome printing(const std::string& text, const Limits& limits = {}) { return run_printing(words(text), limits); }
Outcome calling(const std::string& text, const Limits& limits = {}) { return run_calling(words(text), "f", limits); }

// "9 9 9 ... 9": `n` digit tokens.
std::string nines(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += i ? " 9" : "9";
  return s;
}

#define EXPECT_VALUE(outcome, expected)                                            \
  do {                                                                             \
    const Outcome o_ = (outcome);                                                  \
    EXPECT_EQ(status_name(o_.status), "ok");                                       \
    EXPECT_EQ(o_.value, (expected));                                               \
  } while (0)

#define EXPECT_STATUS(outcome, expected) EXPECT_EQ(status_name((outcome).status), status_name(expected))

TEST(MathFormatsInterpreter, ArithmeticFollowsPrecedenceAndAssociativity) {
  EXPECT_VALUE(printing("print ( 2 + 3 * 4 )"), 14);
  EXPECT_VALUE(printing("print ( ( 2 + 3 ) * 4 )"), 20);
  EXPECT_VALUE(printing("print ( 1 0 - 2 - 3 )"), 5);        // left to right, not 10 - (2 - 3)
  EXPECT_VALUE(printing("print ( 2 * 3 - 4 * 5 + 1 )"), -13);
  EXPECT_VALUE(printing("print ( 7 - ( 2 - 3 ) * 2 )"), 9);
  EXPECT_VALUE(printing("print ( 1 2 3 )"), 123);            // digits written one by one form one number
  EXPECT_VALUE(printing("print ( 0 )"), 0);
}

TEST(MathFormatsInterpreter, StatementsVariablesAndTheLastPrint) {
  EXPECT_VALUE(printing("a = 3 <nl> b = a * 5 <nl> c = b + 2 <nl> print ( c )"), 17);
  EXPECT_VALUE(printing("a = 3 ; print ( a ) ; a = a + 1 ; print ( a * a )"), 16);  // the last value printed
  EXPECT_VALUE(printing("a = 1 <nl> <nl> ; print ( a ) ;"), 1);                         // empty statements
  EXPECT_STATUS(printing("a = 3"), Status::no_value);                                     // nothing printed
  EXPECT_STATUS(printing(""), Status::no_value);
}

TEST(MathFormatsInterpreter, FunctionsReturnTheirValue) {
  EXPECT_VALUE(calling("def f ( ) : a = 3 ; b = a * 5 ; c = b + 2 ; return c"), 17);
  EXPECT_VALUE(calling("def f ( ) : return 4 ; return 5"), 4);  // return ends the call
  EXPECT_VALUE(printing("def f ( ) : return 2 1 <nl> print ( f ( ) + f ( ) )"), 42);
  EXPECT_VALUE(printing("a = 5 <nl> def f ( ) : return a * 2 <nl> print ( f ( ) )"), 10);  // reads the module's a
  // A function's assignments stay local.
  EXPECT_VALUE(printing("a = 5 <nl> def f ( ) : a = 1 ; return a <nl> b = f ( ) <nl> print ( a * 1 0 + b )"), 51);
  EXPECT_VALUE(printing("def f ( ) : print ( 9 ) ; return 1 <nl> f ( )"), 9);  // a call statement may drop its value
  EXPECT_STATUS(calling("def f ( ) : a = 1"), Status::no_value);               // no return: None, not a number
  EXPECT_STATUS(calling("def g ( ) : return 1"), Status::undefined_name);      // no f
  EXPECT_STATUS(printing("print ( f ( ) ) <nl> def f ( ) : return 1"), Status::undefined_name);  // called before def
}

TEST(MathFormatsInterpreter, ErrorsAreReportedNotThrown) {
  EXPECT_STATUS(printing("print ( x )"), Status::undefined_name);
  EXPECT_STATUS(printing("print ( a ) <nl> a = 3"), Status::undefined_name);  // used before it is assigned
  EXPECT_STATUS(printing("print ( 2 + )"), Status::syntax_error);
  EXPECT_STATUS(printing("print ( ( 2 + 3 )"), Status::syntax_error);
  EXPECT_STATUS(printing("print 2"), Status::syntax_error);
  EXPECT_STATUS(printing("a = = 3"), Status::syntax_error);
  EXPECT_STATUS(printing("a = 3 b = 4"), Status::syntax_error);
  EXPECT_STATUS(printing("print ( - 3 )"), Status::syntax_error);   // no unary minus
  EXPECT_STATUS(printing("print ( 0 7 )"), Status::syntax_error);   // no leading zero
  EXPECT_STATUS(printing("return 3"), Status::syntax_error);        // return outside a function
  EXPECT_STATUS(printing("a = 3 . print ( a )"), Status::syntax_error);
  EXPECT_STATUS(printing("print ( 1 ) <nl> a = has"), Status::undefined_name);
  // Nothing runs when the module does not compile.
  EXPECT_STATUS(printing("print ( 1 ) <nl> print ( 2 +"), Status::syntax_error);
}

TEST(MathFormatsInterpreter, UnterminatedDefinitionsAreSyntaxErrors) {
  EXPECT_STATUS(calling("def f ( ) :"), Status::syntax_error);
  EXPECT_STATUS(calling("def f ( ) : <nl> return 3"), Status::syntax_error);  // no indented bodies
  EXPECT_STATUS(calling("def f ( )"), Status::syntax_error);
  EXPECT_STATUS(calling("def f ( ) : a = 3 ;"), Status::no_value);
  EXPECT_STATUS(calling("def"), Status::syntax_error);
  EXPECT_STATUS(calling("def f ( ) : def g ( ) : return 1"), Status::syntax_error);  // no nested def
}

TEST(MathFormatsInterpreter, LiteralsLongerThan18DigitsAreRefused) {
  EXPECT_VALUE(printing("print ( " + nines(18) + " )"), 999999999999999999LL);
  EXPECT_STATUS(printing("print ( " + nines(19) + " )"), Status::literal_too_long);
  EXPECT_STATUS(printing("print ( 1 " + nines(29) + " )"), Status::literal_too_long);  // 30 digits
  EXPECT_STATUS(run_printing({"print", "(", "123456789012345678901234567890", ")"}), Status::literal_too_long);
}

TEST(MathFormatsInterpreter, ArithmeticOverflowIsAnError) {
  const std::string big = "a = " + nines(18) + " <nl> ";
  EXPECT_STATUS(printing(big + "print ( a * 1 0 )"), Status::overflow);
  EXPECT_STATUS(printing(big + "print ( a * a )"), Status::overflow);
  EXPECT_VALUE(printing(big + "print ( a * 9 )"), 8999999999999999991LL);  // still below 2^63
  std::string sum = "print ( a", difference = "print ( 0";
  for (int i = 0; i < 9; ++i) sum += " + a";
  for (int i = 0; i < 10; ++i) difference += " - a";
  EXPECT_STATUS(printing(big + sum + " )"), Status::overflow);         // 10 (10^18 - 1) > 2^63
  EXPECT_STATUS(printing(big + difference + " )"), Status::overflow);  // and below -2^63
  // Repeated squaring overflows whatever the literals' size.
  EXPECT_STATUS(printing("a = 9 <nl> a = a * a <nl> a = a * a <nl> a = a * a <nl> a = a * a <nl> a = a * a <nl> print ( a )"),
                Status::overflow);
}

TEST(MathFormatsInterpreter, RecursionIsBoundedAndFast) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_STATUS(calling("def f ( ) : return f ( )"), Status::depth_limit);
  EXPECT_STATUS(calling("def f ( ) : a = f ( ) + 1 ; return a"), Status::depth_limit);
  EXPECT_STATUS(printing("def f ( ) : return g ( ) <nl> def g ( ) : return f ( ) <nl> print ( f ( ) )"), Status::depth_limit);
  EXPECT_STATUS(calling("def f ( ) : return f ( )", {1000000, 256}), Status::depth_limit);
  // A call tree of 2^14 leaves: only the step budget stops it.
  std::string tree = "def h0 ( ) : return 1";
  for (int i = 1; i <= 14; ++i) {
    tree += " <nl> def h" + std::to_string(i) + " ( ) : return h" + std::to_string(i - 1) + " ( ) + h" + std::to_string(i - 1) + " ( )";
  }
  EXPECT_STATUS(printing(tree + " <nl> print ( h14 ( ) )"), Status::step_limit);
  EXPECT_VALUE(printing(tree + " <nl> print ( h14 ( ) )", {1000000, 16}), 16384);
  EXPECT_VALUE(printing(tree + " <nl> print ( h3 ( ) )"), 8);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
}

TEST(MathFormatsInterpreter, StepAndDepthLimitsAreTheOnesGiven) {
  const std::string chain = "def f ( ) : return g ( ) <nl> def g ( ) : return 3 <nl> print ( f ( ) )";
  EXPECT_VALUE(printing(chain, {10000, 2}), 3);
  EXPECT_STATUS(printing(chain, {10000, 1}), Status::depth_limit);
  // Two statements of one instruction each: "a = 1" (2 steps), "print ( a )" (2 steps).
  EXPECT_VALUE(printing("a = 1 <nl> print ( a )", {4, 16}), 1);
  EXPECT_STATUS(printing("a = 1 <nl> print ( a )", {3, 16}), Status::step_limit);
  std::string long_sum = "print ( 1";
  for (int i = 0; i < 200; ++i) long_sum += " + 1";
  EXPECT_STATUS(printing(long_sum + " )", {100, 16}), Status::step_limit);
  EXPECT_VALUE(printing(long_sum + " )"), 201);
}

TEST(MathFormatsInterpreter, DeepParenthesesAndLongInputsAreSafe) {
  std::string deep = "print ( ";
  for (int i = 0; i < 64; ++i) deep += "( ";
  deep += "1";
  for (int i = 0; i < 64; ++i) deep += " )";
  EXPECT_VALUE(printing(deep + " )"), 1);
  std::string too_deep = "print ( ";
  for (int i = 0; i < 100000; ++i) too_deep += "( ";
  EXPECT_STATUS(printing(too_deep + "1 )"), Status::syntax_error);
  // A long flat sum compiles to postfix code run on an explicit stack (no recursion per term).
  std::vector<std::string> sum = {"print", "(", "1"};
  for (int i = 0; i < 200000; ++i) sum.insert(sum.end(), {"+", "1"});
  sum.push_back(")");
  EXPECT_STATUS(run_printing(sum), Status::step_limit);
  EXPECT_VALUE(run_printing(sum, {1000000, 16}), 200001);
}

// Random token soup over the task's vocabulary and a few strangers: never a throw, always a known status,
// the same outcome twice.
TEST(MathFormatsInterpreter, RandomTokenSoupNeverCrashes) {
  const std::vector<std::string> alphabet = {"0", "1", "2", "5", "9", "a", "b", "c", "f", "+", "-", "*", "=", "(", ")",
                                             ":", ";", "<nl>", "def", "return", "print", "<code>", "</code>", "boxed",
                                             "{", "}", "has", ".", "?", "<eos>", "", "99999999999999999999", "é"};
  const std::vector<std::vector<std::string>> programs = {words("a = 3 <nl> b = a * 5 <nl> print ( b + 2 )"),
                                                         words("def f ( ) : a = 3 ; b = a * 5 ; return b + 2")};
  std::mt19937_64 rng(7);
  int ok = 0;
  for (int trial = 0; trial < 5000; ++trial) {
    std::vector<std::string> tokens;
    if (trial % 3 == 0) {  // a real program with 0 to 2 random edits
      tokens = programs[rng() % 2];
      for (int edits = static_cast<int>(rng() % 3); edits > 0; --edits) {
        const size_t at = rng() % tokens.size();
        const std::string& t = alphabet[rng() % alphabet.size()];
        if (rng() % 2) {
          tokens[at] = t;
        } else {
          tokens.insert(tokens.begin() + static_cast<std::ptrdiff_t>(at), t);
        }
      }
    } else {
      tokens.resize(rng() % 60);
      for (auto& t : tokens) t = alphabet[rng() % alphabet.size()];
    }
    Outcome a, b, c;
    ASSERT_NO_THROW(a = run_printing(tokens));
    ASSERT_NO_THROW(b = run_calling(tokens, "f"));
    ASSERT_NO_THROW(c = run_printing(tokens));
    EXPECT_EQ(a.status, c.status);
    EXPECT_EQ(a.value, c.value);
    EXPECT_NE(status_name(a.status), "unknown");
    EXPECT_NE(b.status, Status::internal_error);
    ok += a.ok() + b.ok();
  }
  EXPECT_GT(ok, 0);         // the soup is not all errors
  EXPECT_LT(ok, 2 * 5000);  // nor all programs
}

}  // namespace
}  // namespace assay::math_formats
