// Layout (a) of README "Distributed nodes": two ingress nodes near RabbitMQ
// share one auditor node that holds the only PostgreSQL connections. Every
// guarantee holds across the nodes: exact outcomes, one counted vote per
// voter, audit rows naming the ingress node that decided. And the local
// fallback: with REMOTE_FALLBACK=local an ingress node keeps deciding while
// the auditor node is away, then moves back to it.
#define CAF_SUITE remote_auditor
#include <caf/test/unit_test.hpp>

#include <set>

#include "tests/distributed/nodes.hpp"

using namespace dist;

CAF_TEST(two ingress nodes share one remote auditor) {
  suite_stack s{"dist_shared", 9, 18200};
  const uint16_t node_port = 18290;
  CAF_REQUIRE(tcp_port_free(node_port));
  s.declare_queues();
  constexpr int voters_n = 300, unknown_n = 30, malformed_n = 5;
  std::vector<std::string> voters;
  for (int i = 0; i < voters_n; ++i)
    voters.push_back(voter_hash(i));
  s.register_voters(voters);

  auto& auditor = s.add_worker("dist-auditor", 18200, auditor_node(node_port));
  CAF_REQUIRE(s.start_and_wait(auditor));
  auto& a = s.add_worker("dist-ingress-a", 18201, ingress_node(node_port));
  auto& b = s.add_worker("dist-ingress-b", 18202, ingress_node(node_port));
  CAF_REQUIRE(s.start_and_wait(a));
  CAF_REQUIRE(s.start_and_wait(b));
  CAF_REQUIRE(consumers_are(s, 2));

  std::vector<std::string> bodies;
  for (int round = 0; round < 2; ++round)
    for (int i = 0; i < voters_n; ++i)
      bodies.push_back(vote(voters[i], 1 + round, base_s() + round * 1000 + i));
  for (int i = 0; i < unknown_n; ++i)
    bodies.push_back(vote(unknown_hash(i), 1, base_s()));
  for (int i = 0; i < malformed_n; ++i)
    bodies.push_back("{\"voter_hash\": 42}");
  s.amqp.publish(s.validation_q, bodies);
  const int total = static_cast<int>(bodies.size());
  std::vector<worker_process*> ingress{&a, &b};
  CAF_CHECK(wait_until(
    [&] {
      return decided(ingress) >= total && outputs(s) >= total - malformed_n
             && s.amqp.count(s.validation_q) == 0;
    },
    60s, 100ms));
  std::this_thread::sleep_for(1000ms);

  // Exact outcomes across the nodes.
  std::map<std::string, long long> rows{
    {"valid", voters_n}, {"duplicate", voters_n}, {"invalid", unknown_n}};
  auto& pg = s.pg();
  CAF_CHECK_EQUAL(pg.count_by_status(), rows);
  CAF_CHECK_EQUAL(
    pg.scalar("SELECT count(DISTINCT voter_hash) FROM vote_audit WHERE status = 'valid'"),
    voters_n);
  CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q), voters_n);
  CAF_CHECK_EQUAL(s.amqp.count(s.review_q), voters_n + unknown_n);
  auto agg = s.amqp.take_all(s.aggregation_q);
  std::set<std::string> counted;
  for (auto& m : agg)
    counted.insert(str_field(parse_object(m.body), "voter_hash"));
  CAF_CHECK_EQUAL(set_diff({voters.begin(), voters.end()}, counted), "");

  // Both ingress nodes worked, and the rows name the node that decided.
  for (auto* w : ingress) {
    auto m = metric_set::scrape(w->metrics_port());
    CAF_REQUIRE(m.has_value());
    auto id = w->env().at("WORKER_ID");
    auto valid = m->value("validation_votes_processed_total", {{"status", "valid"}});
    CAF_CHECK_GREATER(valid, 0);
    CAF_CHECK_EQUAL(valid, pg.scalar("SELECT count(*) FROM vote_audit WHERE status = 'valid' "
                                     "AND metadata->>'worker_id' = $1",
                                     {id}));
    CAF_CHECK_EQUAL(m->value("validation_remote_stage_up",
                             {{"stage", "auditor"}, {"peer", "127.0.0.1:18290"}}),
                    1);
    CAF_CHECK_GREATER(m->value("validation_stage_duration_seconds_count", {{"stage", "auditor"}}),
                      0);
    CAF_MESSAGE(id << " decided " << valid << " valid votes");
  }
  // Connection fan-in: only the auditor node talks to PostgreSQL.
  auto sessions = [&](const std::string& id) {
    return pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                     {"validation-worker " + id});
  };
  CAF_CHECK_GREATER(sessions("dist-auditor"), 0);
  CAF_CHECK_EQUAL(sessions("dist-ingress-a"), 0);
  CAF_CHECK_EQUAL(sessions("dist-ingress-b"), 0);
  auto am = metric_set::scrape(auditor.metrics_port());
  CAF_REQUIRE(am.has_value());
  CAF_CHECK_GREATER(
    am->value("database_operations_total", {{"operation", "insert_audit"}, {"status", "success"}}),
    0);
  CAF_CHECK(http_get(auditor.metrics_port(), "/readyz").has_value());

  // Graceful stop of every node, ingress first.
  for (auto* w : ingress)
    CAF_CHECK_EQUAL(w->stop(20s).value_or(-1), 0);
  CAF_CHECK_EQUAL(auditor.stop(20s).value_or(-1), 0);
  CAF_CHECK_EQUAL(s.amqp.count(s.validation_q), 0);
}

CAF_TEST(a local fallback decides while the auditor node is away) {
  suite_stack s{"dist_fallback", 9, 18205};
  const uint16_t node_port = 18292;
  CAF_REQUIRE(tcp_port_free(node_port));
  s.declare_queues();
  std::vector<std::string> voters;
  for (int i = 0; i < 300; ++i)
    voters.push_back(voter_hash(i));
  s.register_voters(voters);

  auto& in = s.add_worker("dist-fb-ingress", 18205,
                          ingress_node(node_port, {{"REMOTE_FALLBACK", "local"}}));
  CAF_REQUIRE(s.start_and_wait(in));
  std::vector<std::string> first, second;
  for (int i = 0; i < 200; ++i)
    first.push_back(vote(voters[i], 1, base_s() + i));
  s.amqp.publish(s.validation_q, first);
  CAF_CHECK(wait_until([&] { return s.amqp.count(s.aggregation_q) == 200; }, 30s));
  CAF_CHECK(contains(in.log(), "a local auditor stands in"));

  auto& auditor = s.add_worker("dist-fb-auditor", 18206, auditor_node(node_port));
  CAF_REQUIRE(s.start_and_wait(auditor));
  CAF_CHECK(wait_until([&] { return contains(in.log(), "using the remote auditor at 127.0.0.1:18292"); },
                       30s));
  for (int i = 200; i < 300; ++i)
    second.push_back(vote(voters[i], 1, base_s() + i));
  s.amqp.publish(s.validation_q, second);
  CAF_CHECK(wait_until([&] { return s.amqp.count(s.aggregation_q) == 300; }, 30s));
  std::this_thread::sleep_for(500ms);
  std::map<std::string, long long> rows{{"valid", 300}};
  CAF_CHECK_EQUAL(s.pg().count_by_status(), rows);
  auto am = metric_set::scrape(auditor.metrics_port());
  CAF_REQUIRE(am.has_value());
  CAF_CHECK_GREATER(
    am->value("database_operations_total", {{"operation", "insert_audit"}, {"status", "success"}}),
    0);
  CAF_CHECK_EQUAL(in.stop(20s).value_or(-1), 0);
  CAF_CHECK_EQUAL(auditor.stop(20s).value_or(-1), 0);
}
