// What a remote hop costs: the same backlog drained by an ingress node with
// its auditor in-process, then with the auditor on another node (loopback).
// Prints the auditor stage's round trip per batch and the drain rates; it
// asserts only that every vote was counted (figures are measured, not
// asserted). Run alone: build/tests/distributed_tests -s hop_cost
#define CAF_SUITE hop_cost
#include <caf/test/unit_test.hpp>

#include <cstdio>

#include "tests/distributed/nodes.hpp"

using namespace dist;

namespace {

struct figures {
  double votes_per_s = 0;
  double auditor_ms_per_batch = 0;
  double batches = 0;
};

figures drain(suite_stack& s, const std::vector<std::string>& voters, bool remote,
              uint16_t metrics_port, uint16_t node_port, int64_t already_counted) {
  std::vector<std::string> bodies;
  for (size_t i = 0; i < voters.size(); ++i)
    bodies.push_back(vote(voters[i], 1, base_s() + static_cast<int64_t>(i)));
  s.amqp.publish(s.validation_q, bodies);
  worker_process* node = nullptr;
  env_map env{{"PREFETCH_COUNT", "200"}, {"BATCH_SIZE", "100"}};
  if (remote) {
    node = &s.add_worker(std::string{"hop-auditor-"} + std::to_string(metrics_port),
                         static_cast<uint16_t>(metrics_port + 1), auditor_node(node_port));
    if (!s.start_and_wait(*node))
      throw std::runtime_error("auditor node did not start");
    env = ingress_node(node_port, env);
  }
  auto& in = s.add_worker(remote ? "hop-remote" : "hop-local", metrics_port, env);
  auto t0 = steady::now();
  if (!s.start_and_wait(in))
    throw std::runtime_error("ingress node did not start");
  auto target = already_counted + static_cast<int64_t>(voters.size());
  CAF_CHECK(wait_until([&] { return s.amqp.count(s.aggregation_q) >= target; }, 120s, 10ms));
  auto seconds = std::chrono::duration<double>(steady::now() - t0).count();
  figures f;
  f.votes_per_s = static_cast<double>(voters.size()) / seconds;
  if (auto m = metric_set::scrape(in.metrics_port())) {
    f.batches = m->value("validation_stage_duration_seconds_count", {{"stage", "auditor"}});
    auto sum = m->value("validation_stage_duration_seconds_sum", {{"stage", "auditor"}});
    if (f.batches > 0)
      f.auditor_ms_per_batch = 1000.0 * sum / f.batches;
  }
  CAF_CHECK_EQUAL(in.stop(20s).value_or(-1), 0);
  if (node)
    CAF_CHECK_EQUAL(node->stop(20s).value_or(-1), 0);
  return f;
}

} // namespace

CAF_TEST(a remote auditor costs one loopback hop per batch) {
  suite_stack s{"dist_hop", 14, 18240};
  const uint16_t node_port = 18297;
  CAF_REQUIRE(tcp_port_free(node_port));
  s.declare_queues();
  constexpr int per_run = 20000;
  std::vector<std::string> local_voters, remote_voters;
  for (int i = 0; i < per_run; ++i) {
    local_voters.push_back(voter_hash(i));
    remote_voters.push_back(voter_hash(per_run + i));
  }
  s.register_voters(local_voters);
  s.register_voters(remote_voters);

  auto local = drain(s, local_voters, false, 18240, node_port, 0);
  auto remote = drain(s, remote_voters, true, 18242, node_port, per_run);
  CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q), 2 * per_run);
  std::map<std::string, long long> rows{{"valid", 2 * per_run}};
  CAF_CHECK_EQUAL(s.pg().count_by_status(), rows);
  std::printf("hop cost (%d votes each, batches of up to 100):\n"
              "  auditor in-process:   %6.2f ms per batch (%.0f batches), drain %6.0f votes/s\n"
              "  auditor on a node:    %6.2f ms per batch (%.0f batches), drain %6.0f votes/s\n"
              "  remote hop:           %+6.2f ms per batch, drain rate x %.2f\n",
              per_run, local.auditor_ms_per_batch, local.batches, local.votes_per_s,
              remote.auditor_ms_per_batch, remote.batches, remote.votes_per_s,
              remote.auditor_ms_per_batch - local.auditor_ms_per_batch,
              remote.votes_per_s / local.votes_per_s);
  std::fflush(stdout);
}
