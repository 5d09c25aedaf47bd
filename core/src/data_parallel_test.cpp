#include "data_parallel.hpp"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <map>

namespace assay {
namespace {

/// Sets the given variables (nullptr = unset) for the scope of one test, restoring them after.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, const char*>& values) {
    for (const char* name : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS",
                             "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NNODES", "SLURM_JOB_ID"}) {
      const char* old = std::getenv(name);
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      unsetenv(name);
    }
    for (const auto& [name, value] : values) {
      if (value) setenv(name.c_str(), value, 1);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) setenv(name.c_str(), value->c_str(), 1);
      else unsetenv(name.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

TEST(RankFromEnvironment, SingleProcessWithoutVariables) {
  ScopedEnv env({});
  const RankInfo info = rank_from_environment();
  EXPECT_EQ(info.world_size, 1);
  EXPECT_EQ(info.rank, 0);
  EXPECT_FALSE(info.distributed());
}

TEST(RankFromEnvironment, TorchrunVariables) {
  ScopedEnv env({{"WORLD_SIZE", "4"}, {"RANK", "3"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "1234"}});
  const RankInfo info = rank_from_environment();
  EXPECT_EQ(info.world_size, 4);
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.master_addr, "node7");
  EXPECT_EQ(info.master_port, 1234);
}

TEST(RankFromEnvironment, SlurmFallbackOnOneNode) {
  ScopedEnv env({{"SLURM_NTASKS", "2"}, {"SLURM_PROCID", "1"}, {"SLURM_LOCALID", "1"}, {"SLURM_JOB_ID", "4711"}});
  const RankInfo info = rank_from_environment();
  EXPECT_EQ(info.world_size, 2);
  EXPECT_EQ(info.rank, 1);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.master_addr, "127.0.0.1");
  EXPECT_EQ(info.master_port, 29500 + 711);
}

TEST(RankFromEnvironment, TorchrunWinsOverSlurm) {
  ScopedEnv env({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "5"}});
  EXPECT_EQ(rank_from_environment().world_size, 2);
  EXPECT_EQ(rank_from_environment().rank, 0);
}

void expect_error(const std::map<std::string, const char*>& values, const std::string& fragment) {
  ScopedEnv env(values);
  try {
    rank_from_environment();
    ADD_FAILURE() << "no error; expected one mentioning '" << fragment << "'";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(RankFromEnvironment, BadValuesNameTheVariable) {
  expect_error({{"WORLD_SIZE", "2"}}, "RANK is not");
  expect_error({{"WORLD_SIZE", "2"}, {"RANK", "2"}}, "outside a world of 2");
  expect_error({{"WORLD_SIZE", "two"}, {"RANK", "0"}}, "WORLD_SIZE=two");
  expect_error({{"WORLD_SIZE", "2"}, {"RANK", "-1"}}, "RANK=-1");
  expect_error({{"WORLD_SIZE", "0"}, {"RANK", "0"}}, "at least 1");
  expect_error({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "70000"}}, "MASTER_PORT");
  expect_error({{"SLURM_NTASKS", "4"}, {"SLURM_PROCID", "0"}, {"SLURM_NNODES", "2"}}, "set MASTER_ADDR");
}

/// Runs `body(rank)` in `world` forked processes joined into one Gloo group; true iff all exit 0. The test
/// process itself makes no group (ctest runs each test in a process of its own, so it forks early).
bool in_ranks(int world, const std::function<void(DataParallel&)>& body) {
  const int port = 20000 + static_cast<int>(getpid() % 20000);
  std::vector<pid_t> children;
  for (int rank = 0; rank < world; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) {
      int code = 0;
      try {
        at::set_num_threads(1);
        DataParallel dp({rank, world, rank, "127.0.0.1", port}, c10::Device(c10::kCPU), /*bucket_mb=*/0.0001, 60);
        body(dp);
        code = ::testing::Test::HasFailure() ? 1 : 0;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
        code = 2;
      }
      std::fflush(stderr);
      _exit(code);
    }
    children.push_back(pid);
  }
  bool ok = true;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return ok;
}

TEST(DataParallel, ReduceStepSumsScalarsAndGradientsOverRanksInManyBuckets) {
  // 0.0001 MiB buckets (104 bytes) put each tensor below in buckets of its own or of a few; float64 and
  // float32 never share one. Rank r's gradient of tensor k is (r + 1) * (k + 1) * arange; tensor 2 has a
  // gradient on rank 1 only; tensor 3 on no rank.
  ASSERT_TRUE(in_ranks(3, [](DataParallel& dp) {
    const int r = dp.info().rank;
    std::vector<at::Tensor> params = {torch::zeros({5, 4}), torch::zeros({3}, torch::kDouble), torch::zeros({7}),
                                      torch::zeros({2}), torch::zeros({40})};
    for (size_t k = 0; k < params.size(); ++k) {
      if (k == 3 || (k == 2 && r != 1)) continue;
      params[k].mutable_grad() = torch::arange(params[k].numel(), params[k].options()).view(params[k].sizes()) *
                                 static_cast<double>((r + 1) * (k + 1));
    }
    std::vector<double> scalars{1.5 * r, r == 2 ? 1.0 : 0.0};
    dp.reduce_step(scalars, params);
    EXPECT_EQ(scalars[0], 1.5 * (0 + 1 + 2));
    EXPECT_EQ(scalars[1], 1.0);
    for (size_t k = 0; k < params.size(); ++k) {
      if (k == 3) {
        EXPECT_FALSE(params[k].grad().defined()) << "a parameter no rank has a gradient for keeps none";
        continue;
      }
      const double ranks_sum = k == 2 ? 2.0 : 1.0 + 2.0 + 3.0;  // sum over ranks of (r + 1)
      auto expected = torch::arange(params[k].numel(), params[k].options()).view(params[k].sizes()) *
                      (ranks_sum * static_cast<double>(k + 1));
      ASSERT_TRUE(params[k].grad().defined()) << k;
      EXPECT_EQ(params[k].grad().dtype(), params[k].dtype()) << k;
      EXPECT_TRUE(torch::equal(params[k].grad(), expected)) << k << ": " << params[k].grad();
    }
    EXPECT_GT(dp.reduced_bytes(), 0);
  }));
}

TEST(DataParallel, BroadcastCopiesRankZerosValues) {
  ASSERT_TRUE(in_ranks(2, [](DataParallel& dp) {
    auto a = torch::full({3, 2}, 10.0 + dp.info().rank);
    auto b = torch::full({4}, static_cast<int64_t>(dp.info().rank), torch::kLong);
    auto strided = torch::full({4, 4}, 1.0 + dp.info().rank).t();  // a view: still written in place
    dp.broadcast({a, b, strided});
    EXPECT_TRUE(torch::equal(a, torch::full({3, 2}, 10.0)));
    EXPECT_TRUE(torch::equal(b, torch::zeros({4}, torch::kLong)));
    EXPECT_TRUE(torch::equal(strided, torch::full({4, 4}, 1.0)));
    std::vector<double> none;
    dp.reduce_step(none, {});  // a step with nothing to share still meets the other ranks
  }));
}

TEST(DataParallel, PeersThatNeverComeTimeOutWithTheAddress) {
  const int port = 40000 + static_cast<int>(getpid() % 20000);
  try {
    DataParallel dp({1, 2, 1, "127.0.0.1", port}, c10::Device(c10::kCPU), 25, 1);
    FAIL() << "connected to nobody";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace assay
