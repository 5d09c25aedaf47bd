#include <assay/options.hpp>

#include <gtest/gtest.h>

#include <cstdlib>

namespace assay {
namespace {

struct Example {
  int64_t count = 3;
  double rate = 0.5;
  bool on = true;
  std::string mode = "a";
  std::vector<double> weights = {1.0, 2.0};
  void fields(Fields& f) {
    f("count", count, "how many").range(1, 9);
    f("rate", rate, "how fast").min(0);
    f("on", on, "whether");
    f("mode", mode, "which").choices({"a", "b"});
    f("weights", weights, "per item");
  }
};

TEST(Options, SchemaReadsNamesTypesDefaultsAndConstraints) {
  Schema schema = schema_of<Example>();
  ASSERT_EQ(schema.size(), 5u);
  EXPECT_EQ(schema[0].name, "count");
  EXPECT_EQ(schema[0].type, Type::integer);
  EXPECT_EQ(std::get<int64_t>(schema[0].default_value), 3);
  EXPECT_EQ(*schema[0].min, 1);
  EXPECT_EQ(*schema[0].max, 9);
  EXPECT_EQ(schema[1].type, Type::real);
  EXPECT_FALSE(schema[1].max.has_value());
  EXPECT_EQ(schema[3].choices, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(schema[4].type, Type::real_list);
  EXPECT_EQ(schema[2].doc, "whether");
  EXPECT_EQ(describe_type(schema[0]), "integer in [1, 9]");
  EXPECT_EQ(describe_type(schema[3]), "string, one of: \"a\" \"b\"");
}

TEST(Options, AssignsGivenValuesAndKeepsDefaults) {
  Values values{{"rate", 0.25}, {"mode", std::string("b")}, {"weights", std::vector<double>{3.0}}};
  Example e = options_from<Example>(values);
  EXPECT_EQ(e.count, 3);
  EXPECT_EQ(e.rate, 0.25);
  EXPECT_EQ(e.mode, "b");
  EXPECT_EQ(e.weights, std::vector<double>{3.0});
}

TEST(Options, TomlSpellingRoundTrips) {
  for (double x : {0.1, 1e-8, 30.0, 3e-3, 1.0 / 3.0, 123456789.125}) {
    std::string text = to_toml(x);
    EXPECT_EQ(std::strtod(text.c_str(), nullptr), x) << text;
    EXPECT_NE(text.find_first_of(".e"), std::string::npos) << text;  // stays a TOML float
  }
  EXPECT_EQ(to_toml(30.0), "30.0");
  EXPECT_EQ(to_toml(int64_t{7}), "7");
  EXPECT_EQ(to_toml(std::string("a\"b")), "\"a\\\"b\"");
  EXPECT_EQ(to_toml(std::vector<std::string>{"x", "y"}), "[\"x\", \"y\"]");
  EXPECT_EQ(to_toml(false), "false");
}

}  // namespace
}  // namespace assay
