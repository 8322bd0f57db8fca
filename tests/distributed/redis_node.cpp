// Layout (b) of README "Distributed nodes": validator and dedup on a node next
// to Redis, serving both stages on one port; the ingress node keeps the
// auditor and publisher. G2 across the nodes: each voter counted once, the
// duplicate counters exact.
#define CAF_SUITE redis_node
#include <caf/test/unit_test.hpp>

#include "tests/distributed/nodes.hpp"

using namespace dist;

CAF_TEST(validator and dedup served by a node next to Redis) {
  suite_stack s{"dist_redis", 9, 18250};
  const uint16_t node_port = 18298;
  CAF_REQUIRE(tcp_port_free(node_port));
  s.declare_queues();
  constexpr int voters_n = 200, attempts = 3, unknown_n = 20;
  std::vector<std::string> voters, bodies;
  for (int i = 0; i < voters_n; ++i)
    voters.push_back(voter_hash(i));
  s.register_voters(voters);
  for (int round = 0; round < attempts; ++round)
    for (int i = 0; i < voters_n; ++i)
      bodies.push_back(vote(voters[i], 1 + round, base_s() + round * 1000 + i));
  for (int i = 0; i < unknown_n; ++i)
    bodies.push_back(vote(unknown_hash(i), 1, base_s()));

  auto& redis_node = s.add_worker("dist-redis-node", 18250,
                                  {{"NODE_INGRESS", "false"},
                                   {"NODE_STAGES", "validator,dedup"},
                                   {"NODE_LISTEN_PORT", std::to_string(node_port)}});
  CAF_REQUIRE(s.start_and_wait(redis_node));
  auto at = "127.0.0.1:" + std::to_string(node_port);
  auto& in = s.add_worker("dist-redis-ingress", 18251,
                          {{"REMOTE_VALIDATOR", at},
                           {"REMOTE_DEDUP", at},
                           {"PREFETCH_COUNT", "100"},
                           {"BACKOFF_MAX_MS", "1000"}});
  CAF_REQUIRE(s.start_and_wait(in));
  s.amqp.publish(s.validation_q, bodies);
  const int total = static_cast<int>(bodies.size());
  CAF_CHECK(wait_until([&] { return outputs(s) >= total && s.amqp.count(s.validation_q) == 0; },
                       60s, 100ms));
  std::this_thread::sleep_for(1000ms);

  std::map<std::string, long long> rows{{"valid", voters_n},
                                        {"duplicate", voters_n * (attempts - 1)},
                                        {"invalid", unknown_n}};
  CAF_CHECK_EQUAL(s.pg().count_by_status(), rows);
  CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q), voters_n);
  CAF_CHECK_EQUAL(s.redis.scard("voted_hashes"), voters_n);
  int wrong = 0;
  for (auto& h : voters)
    if (s.redis.get("duplicate_count:" + h).value_or("") != std::to_string(attempts - 1))
      ++wrong;
  CAF_CHECK_EQUAL(wrong, 0);
  // The Redis round trips happen on the stage node, not on the ingress node.
  auto rm = metric_set::scrape(redis_node.metrics_port());
  auto im = metric_set::scrape(in.metrics_port());
  CAF_REQUIRE(rm.has_value() && im.has_value());
  auto redis_ops = [](const metric_set& m) {
    double sum = 0;
    for (auto& [op, v] : m.by_label("redis_operations_total", "operation"))
      sum += v;
    return sum;
  };
  CAF_CHECK_GREATER(redis_ops(*rm), 0);
  CAF_CHECK_EQUAL(redis_ops(*im), 0);
  CAF_CHECK_EQUAL(im->value("validation_remote_stage_up", {{"stage", "dedup"}, {"peer", at}}), 1);
  CAF_CHECK_EQUAL(im->value("validation_remote_stage_up", {{"stage", "validator"}, {"peer", at}}),
                  1);
  CAF_CHECK_EQUAL(in.stop(20s).value_or(-1), 0);
  CAF_CHECK_EQUAL(redis_node.stop(20s).value_or(-1), 0);
}
