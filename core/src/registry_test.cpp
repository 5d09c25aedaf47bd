#include "registry.hpp"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

using testing::plugins;

const std::string kPluginDir = ASSAY_BINARY_DIR "/lib/assay/plugins";

TEST(Registry, FindsTheFirstPartyComponentsOfEachKind) {
  const auto optimizers = plugins().names(Kind::optimizer);
  EXPECT_TRUE(std::is_sorted(optimizers.begin(), optimizers.end()));
  for (const char* name : {"adamw", "sgd"}) {
    EXPECT_NE(std::find(optimizers.begin(), optimizers.end(), name), optimizers.end()) << name;
  }
  for (const char* name : {"accuracy", "fourier_features", "margin"}) EXPECT_TRUE(plugins().find(Kind::analyzer, name));
  EXPECT_TRUE(plugins().find(Kind::task, "modular_addition"));
  EXPECT_TRUE(plugins().find(Kind::model, "quadratic_mlp"));
  EXPECT_TRUE(plugins().find(Kind::algorithm, "ce"));
  EXPECT_TRUE(plugins().find(Kind::precision, "fp32"));
  EXPECT_EQ(plugins().find(Kind::task, "quadratic_mlp"), nullptr);  // names are per kind
}

TEST(Registry, RefusesAnotherSdkAbiNamingFileVersionsAndFix) {
  Registry registry;
  const std::string path = ASSAY_BINARY_DIR "/tests/mismatched/abi/assay-mismatched.so";
  try {
    registry.load_file(path);
    FAIL() << "loaded a plugin built against another SDK ABI";
  } catch (const PluginError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("SDK ABI " + std::to_string(ASSAY_SDK_ABI + 1)), std::string::npos) << message;
    EXPECT_NE(message.find("this host has SDK ABI " + std::to_string(ASSAY_SDK_ABI)), std::string::npos) << message;
    EXPECT_NE(message.find("rebuild the plugin"), std::string::npos) << message;
  }
  EXPECT_TRUE(registry.components().empty());
}

TEST(Registry, RefusesAnotherLibTorch) {
  Registry registry;
  try {
    registry.load_file(ASSAY_BINARY_DIR "/tests/mismatched/torch/assay-mismatched.so");
    FAIL() << "loaded a plugin built against LibTorch 1.13";
  } catch (const PluginError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("built against LibTorch 1.13.1, but this host runs LibTorch " TORCH_VERSION), std::string::npos)
        << message;
  }
}

TEST(Registry, DuplicateComponentNameIsAnError) {
  auto dir = testing::temp_dir("duplicate");
  std::filesystem::copy_file(kPluginDir + "/assay-sgd.so", dir / "assay-sgd-copy.so");
  Registry registry;
  registry.load_file(kPluginDir + "/assay-sgd.so");
  try {
    registry.load_file((dir / "assay-sgd-copy.so").string());
    FAIL() << "two plugins provided optimizer 'sgd'";
  } catch (const PluginError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("duplicate optimizer 'sgd'"), std::string::npos) << message;
    EXPECT_NE(message.find(kPluginDir + "/assay-sgd.so"), std::string::npos) << message;
    EXPECT_NE(message.find("assay-sgd-copy.so"), std::string::npos) << message;
  }
}

TEST(Registry, SameDirectoryTwiceIsLoadedOnce) {
  Registry once, twice;
  once.load_directories({kPluginDir});
  twice.load_directories({kPluginDir, kPluginDir + "/."});  // would throw "duplicate" if loaded twice
  EXPECT_EQ(twice.components().size(), once.components().size());
}

TEST(Registry, ObjectsKeepTheirLibraryLoadedAfterTheRegistryIsGone) {
  // A private copy, so that no other registry in this process holds the same library open.
  auto copy = testing::temp_dir("lifetime") / "assay-modular_addition-copy.so";
  std::filesystem::copy_file(kPluginDir + "/assay-modular_addition.so", copy);
  std::shared_ptr<Task> task;
  {
    Registry registry;
    registry.load_file(copy.string());
    Context context;
    task = registry.create<Task>("modular_addition", testing::values_of(Kind::task, "modular_addition"), context);
  }
  // The registry (and its handle on the library) is gone; the task's code must still be mapped.
  EXPECT_EQ(task->shape().vocab_size, 31);
  EXPECT_EQ(task->train_batch(0).inputs.size(0), 31 * 31);
  task.reset();
}

TEST(Registry, UnknownComponentSuggestsClosest) {
  Context context;
  try {
    plugins().create<Optimizer>("adam", {}, context);
    FAIL();
  } catch (const PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown optimizer 'adam'; did you mean 'adamw'?"), std::string::npos) << e.what();
  }
  EXPECT_EQ(closest("lrr", {"lr", "beta1", "eps"}), "lr");
  EXPECT_EQ(closest("zzzzzz", {"lr", "beta1"}), "");
}

}  // namespace
}  // namespace assay
