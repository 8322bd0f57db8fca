// What a remote hop costs: the same backlog drained by an ingress node with
// its auditor in-process, then with the auditor on another node (loopback).
// Prints the auditor stage's round trip per batch, the drain rates (from the
// first tenth of the votes counted to the last, so start-up and the node
// handshake are not in it) and the CPU the worker processes spent per vote;
// it asserts only that every vote was counted (figures are measured, not
// asserted). Run alone: build/tests/distributed_tests -s hop_cost
#define CAF_SUITE hop_cost
#include <caf/test/unit_test.hpp>

#include <cstdio>

#include "tests/distributed/nodes.hpp"
#include "tools/proc_stats.hpp"

using namespace dist;

namespace {

struct figures {
  double votes_per_s = 0;
  double auditor_ms_per_batch = 0;
  double batches = 0;
  double cpu_us_per_vote = 0; // ingress node plus the auditor node, if any
  double node_cpu_us_per_vote = 0; // the auditor node's share
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
  if (!s.start_and_wait(in))
    throw std::runtime_error("ingress node did not start");
  auto n = static_cast<int64_t>(voters.size());
  auto first_tenth = already_counted + n / 10;
  CAF_CHECK(wait_until([&] { return s.amqp.count(s.aggregation_q) >= first_tenth; }, 120s, 2ms));
  auto t0 = steady::now();
  auto node_cpu = [&] { return node ? vw::proc::cpu_seconds(node->pid()) : 0.0; };
  auto cpu_of = [&] { return vw::proc::cpu_seconds(in.pid()) + node_cpu(); };
  auto cpu0 = cpu_of();
  auto node0 = node_cpu();
  CAF_CHECK(wait_until([&] { return s.amqp.count(s.aggregation_q) >= already_counted + n; }, 120s,
                       2ms));
  auto seconds = std::chrono::duration<double>(steady::now() - t0).count();
  figures f;
  auto counted = static_cast<double>(n - n / 10);
  f.votes_per_s = counted / seconds;
  f.cpu_us_per_vote = (cpu_of() - cpu0) * 1e6 / counted;
  f.node_cpu_us_per_vote = (node_cpu() - node0) * 1e6 / counted;
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
  std::printf("hop cost (%d votes each, prefetch 200, batches of up to 100):\n"
              "  auditor in-process: %6.2f ms per batch (%.0f batches), drain %6.0f votes/s, "
              "%5.1f us CPU/vote\n"
              "  auditor on a node:  %6.2f ms per batch (%.0f batches), drain %6.0f votes/s, "
              "%5.1f us CPU/vote (%.1f of it the auditor node's)\n"
              "  remote hop:         %+6.2f ms per batch, drain rate x %.2f, %+.1f us CPU/vote\n",
              per_run, local.auditor_ms_per_batch, local.batches, local.votes_per_s,
              local.cpu_us_per_vote, remote.auditor_ms_per_batch, remote.batches,
              remote.votes_per_s, remote.cpu_us_per_vote, remote.node_cpu_us_per_vote,
              remote.auditor_ms_per_batch - local.auditor_ms_per_batch,
              remote.votes_per_s / local.votes_per_s,
              remote.cpu_us_per_vote - local.cpu_us_per_vote);
  std::fflush(stdout);
}
