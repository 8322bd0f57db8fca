// Losing a node costs nothing (DESIGN §4): the auditor node is SIGKILLed in
// the middle of a backlog and restarted. Batches in flight there are requeued
// and redelivered, intake pauses while it is away, and afterwards every valid
// voter has exactly one `valid` audit row and reached aggregation, every
// resubmission is a duplicate, and nothing is left unacked.
#define CAF_SUITE node_loss
#include <caf/test/unit_test.hpp>

#include <set>

#include "tests/distributed/nodes.hpp"

using namespace dist;

CAF_TEST(the auditor node killed mid run and restarted loses nothing) {
  suite_stack s{"dist_kill", 10, 18210};
  const uint16_t node_port = 18293;
  CAF_REQUIRE(tcp_port_free(node_port));
  s.declare_queues();
  constexpr int voters_n = 3000, resubmitted = 500;
  std::vector<std::string> voters;
  for (int i = 0; i < voters_n; ++i)
    voters.push_back(voter_hash(i));
  s.register_voters(voters);
  std::vector<std::string> bodies;
  for (int i = 0; i < voters_n; ++i) {
    bodies.push_back(vote(voters[i], 1, base_s() + i));
    if (i < resubmitted) // the resubmission comes right behind the first vote
      bodies.push_back(vote(voters[i], 2, base_s() + 5000 + i));
  }
  s.amqp.publish(s.validation_q, bodies);
  const int total = static_cast<int>(bodies.size());

  auto node_env = auditor_node(node_port);
  auto& auditor = s.add_worker("dist-kill-auditor", 18210, node_env);
  CAF_REQUIRE(s.start_and_wait(auditor));
  // Small batches and a low prefetch keep the backlog long enough to kill
  // the node in the middle of it.
  auto& in = s.add_worker("dist-kill-ingress", 18211,
                          ingress_node(node_port, {{"PREFETCH_COUNT", "20"}}));
  CAF_REQUIRE(s.start_and_wait(in));

  CAF_REQUIRE(wait_until([&] { return s.amqp.count(s.aggregation_q) >= 300; }, 60s, 5ms));
  auditor.kill_now();
  auto at_kill = s.amqp.count(s.aggregation_q);
  CAF_MESSAGE("auditor node killed with " << at_kill << " votes counted");
  CAF_CHECK_LESS(at_kill, voters_n);
  // While it is away nothing gets past the missing stage and intake stops.
  CAF_CHECK(wait_until([&] { return contains(in.log(), "lost the remote auditor"); }, 10s));
  std::this_thread::sleep_for(1500ms);
  auto paused = s.amqp.count(s.aggregation_q);
  std::this_thread::sleep_for(1500ms);
  CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q), paused);
  auto ready = http_get(in.metrics_port(), "/readyz");
  CAF_CHECK(!ready.has_value()); // 503 while a stage is missing
  CAF_CHECK(in.running());

  auto& again = s.add_worker("dist-kill-auditor", 18210, node_env);
  CAF_REQUIRE(s.start_and_wait(again));
  std::vector<worker_process*> ingress{&in};
  CAF_CHECK(wait_until(
    [&] { return s.amqp.count(s.validation_q) == 0 && decided(ingress) >= total; }, 120s,
    100ms));
  std::this_thread::sleep_for(1500ms);
  CAF_CHECK(contains(in.log(), "is back"));

  // Exactly one counted vote per voter, every resubmission a duplicate.
  auto& pg = s.pg();
  std::map<std::string, long long> rows{{"valid", voters_n}, {"duplicate", resubmitted}};
  CAF_CHECK_EQUAL(pg.count_by_status(), rows);
  CAF_CHECK_EQUAL(
    pg.scalar("SELECT count(DISTINCT voter_hash) FROM vote_audit WHERE status = 'valid'"),
    voters_n);
  CAF_CHECK_EQUAL(pg.scalar("SELECT count(*) FROM vote_audit WHERE status = 'valid' AND "
                            "candidate_id <> 1"),
                  0);
  // Every voter reached aggregation; a repeat (a batch published before the
  // node died but not yet acked) carries the same message_id.
  auto agg = s.amqp.take_all(s.aggregation_q);
  std::set<std::string> counted;
  int bad = 0;
  for (auto& m : agg) {
    auto o = parse_object(m.body);
    auto h = str_field(o, "voter_hash");
    counted.insert(h);
    if (str_field(o, "status") != "valid" || m.message_id.value_or("") != h)
      ++bad;
  }
  CAF_CHECK_EQUAL(set_diff({voters.begin(), voters.end()}, counted), "");
  CAF_CHECK_EQUAL(bad, 0);
  CAF_MESSAGE(agg.size() - voters_n << " valid votes reached aggregation twice (same message_id)");
  CAF_CHECK_EQUAL(s.redis.scard("voted_hashes"), voters_n);

  // Nothing left unacked: after the ingress node stops, the queue is empty.
  CAF_CHECK_EQUAL(in.stop(20s).value_or(-1), 0);
  CAF_CHECK_EQUAL(again.stop(20s).value_or(-1), 0);
  auto info = s.amqp.inspect(s.validation_q);
  CAF_REQUIRE(info.has_value());
  CAF_CHECK_EQUAL(info->messages, 0u);
}
