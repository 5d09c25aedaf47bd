#include "store.hpp"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

using testing::shell;

StoreHeader header() {
  StoreHeader h;
  h.recipe_source = "[run]\nsteps = 3\n";
  h.recipe_resolved = "# resolved\n";
  h.overrides = "run.seed=1";
  h.env = {{"host", "test-host"}, {"time", "2026-01-01T00:00:00Z"}};
  return h;
}

/// Reads a store with h5py (an independent reader) and prints one line per fact.
std::string read_with_h5py(const std::string& path) {
  const std::string script = R"(
import sys, h5py
f = h5py.File(sys.argv[1], "r")
print("status", f.attrs["status"])
print("source", repr(f["recipe"].attrs["source"]))
print("host", f["env"].attrs["host"])
print("loss.step", f["metrics/train.loss/step"][:].tolist())
print("loss.value", f["metrics/train.loss/value"][:].tolist())
print("loss.wall_sorted", bool((f["metrics/train.loss/wall"][:][1:] >= f["metrics/train.loss/wall"][:][:-1]).all()))
v = f["analyzers/probe/weights/value"]
print("weights", v.dtype, v.shape, v[1].tolist(), f["analyzers/probe/weights/step"][:].tolist())
print("axes", f["analyzers/probe/weights"].attrs["axes"])
e = f["events"][:]
print("events", [(int(r["step"]), r["kind"].decode(), r["message"].decode()) for r in e])
)";
  std::string output;
  int code = shell("python3 -c '" + script + "' " + path, &output);
  EXPECT_EQ(code, 0) << output;
  return output;
}

TEST(RunStore, RoundTripThroughH5py) {
  auto path = (testing::temp_dir("store-roundtrip") / "run.h5").string();
  auto store = RunStore::create(path, header());
  store->metric("train.loss", 1, 0.5);
  store->metric("train.loss", 2, 0.25);
  store->recorder("probe").append("weights", 0, torch::tensor({1.0f, 2.0f}));
  store->recorder("probe").describe("weights", "axes", "eval, neuron");
  store->event(1, "eval", "first");
  store->flush();
  store->metric("train.loss", 3, 0.125);  // appended to the existing dataset by a second flush
  store->recorder("probe").append("weights", 10, torch::tensor({3.0f, 4.0f}));
  store->event(3, "checkpoint", "checkpoints/step-3");
  store->attribute("status", "done");
  store->flush();

  const std::string out = read_with_h5py(path);
  EXPECT_NE(out.find("status done"), std::string::npos) << out;
  EXPECT_NE(out.find("source '[run]\\nsteps = 3\\n'"), std::string::npos) << out;
  EXPECT_NE(out.find("host test-host"), std::string::npos) << out;
  EXPECT_NE(out.find("loss.step [1, 2, 3]"), std::string::npos) << out;
  EXPECT_NE(out.find("loss.value [0.5, 0.25, 0.125]"), std::string::npos) << out;
  EXPECT_NE(out.find("loss.wall_sorted True"), std::string::npos) << out;
  EXPECT_NE(out.find("weights float32 (2, 2) [3.0, 4.0] [0, 10]"), std::string::npos) << out;
  EXPECT_NE(out.find("axes eval, neuron"), std::string::npos) << out;
  EXPECT_NE(out.find("events [(1, 'eval', 'first'), (3, 'checkpoint', 'checkpoints/step-3')]"), std::string::npos) << out;
}

TEST(RunStore, UnflushedWritesNeverReachTheFile) {
  auto path = (testing::temp_dir("store-unflushed") / "run.h5").string();
  auto store = RunStore::create(path, header());
  store->metric("train.loss", 1, 1.0);
  store->flush();
  store->metric("train.loss", 2, 2.0);  // buffered only: as if the process died now
  std::string out;
  shell("python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1]); "
        "print(f.attrs[\"status\"], f[\"metrics/train.loss/step\"][:].tolist())' " + path, &out);
  EXPECT_EQ(out, "running [1]\n");
}

TEST(RunStore, ResumeDropsEverythingAfterTheCheckpointStep) {
  auto path = (testing::temp_dir("store-resume") / "run.h5").string();
  {
    auto store = RunStore::create(path, header());
    for (int64_t step = 1; step <= 10; ++step) {
      store->metric("train.loss", step, static_cast<double>(step));
      if (step % 2 == 0) store->recorder("probe").append("weights", step, torch::full({3}, static_cast<double>(step)));
      store->event(step, "eval", "");
    }
    store->event(2, "late", "recorded out of step order");
    store->event(9, "late", "after the checkpoint");
    store->attribute("status", "failed");
    store->flush();
  }
  auto store = RunStore::resume(path, 5, header());
  std::string out;
  ASSERT_EQ(shell("python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1]); "
                  "print(f[\"metrics/train.loss/step\"][:].tolist(), f[\"metrics/train.loss/value\"][:].tolist(), "
                  "f[\"analyzers/probe/weights/value\"].shape, f[\"analyzers/probe/weights/step\"][:].tolist(), "
                  "[int(s) for s in f[\"events\"][\"step\"]], f.attrs[\"status\"])' " + path,
                  &out),
            0)
      << out;
  EXPECT_EQ(out, "[1, 2, 3, 4, 5] [1.0, 2.0, 3.0, 4.0, 5.0] (2, 3) [2, 4] [1, 2, 3, 4, 5, 2] running\n");
}

TEST(RunStore, RejectsBadNamesAndShapeChanges) {
  auto path = (testing::temp_dir("store-bad") / "run.h5").string();
  auto store = RunStore::create(path, header());
  EXPECT_THROW(store->metric("a/b", 0, 1.0), std::invalid_argument);
  store->recorder("probe").append("x", 0, torch::zeros({2}));
  EXPECT_THROW(store->recorder("probe").append("x", 1, torch::zeros({3})), std::invalid_argument);
  store->flush();
  EXPECT_THROW(store->recorder("probe").append("x", 2, torch::zeros({3})), std::invalid_argument);  // across flushes
  EXPECT_THROW(store->recorder("probe").append("x", 2, torch::zeros({2}, torch::kLong)), std::invalid_argument);
  EXPECT_THROW(RunStore::create(path, header()), std::runtime_error);  // never overwrites a run
}

TEST(RunStore, InspectSummarizes) {
  auto path = (testing::temp_dir("store-inspect") / "run.h5").string();
  auto store = RunStore::create(path, header());
  store->metric("eval.test.accuracy", 7, 0.75);
  store->event(7, "diverged", "loss is nan");
  store->attribute("status", "diverged");
  store->flush();
  const std::string text = inspect_store(path, 5);
  EXPECT_NE(text.find("status   diverged"), std::string::npos) << text;
  EXPECT_NE(text.find("/metrics/eval.test.accuracy  rows 1, last step 7: 0.75"), std::string::npos) << text;
  EXPECT_NE(text.find("step 7  diverged  loss is nan"), std::string::npos) << text;
}

}  // namespace
}  // namespace assay
