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

CAF_TEST(a frozen auditor node is declared lost by heartbeats) {
  // SIGSTOP: no TCP reset, the socket stays open; only the missing
  // heartbeats tell the ingress node (NODE_LINK_TIMEOUT_MS) that it is gone.
  suite_stack s{"dist_frozen", 10, 18215};
  const uint16_t node_port = 18299;
  CAF_REQUIRE(tcp_port_free(node_port));
  s.declare_queues();
  constexpr int voters_n = 1500;
  std::vector<std::string> voters, bodies;
  for (int i = 0; i < voters_n; ++i) {
    voters.push_back(voter_hash(i));
    bodies.push_back(vote(voters.back(), 1, base_s() + i));
  }
  s.register_voters(voters);
  s.amqp.publish(s.validation_q, bodies);
  env_map link{{"NODE_LINK_TIMEOUT_MS", "2000"}};
  auto& auditor = s.add_worker("dist-frozen-auditor", 18215, auditor_node(node_port, link));
  CAF_REQUIRE(s.start_and_wait(auditor));
  auto& in = s.add_worker(
    "dist-frozen-ingress", 18216,
    ingress_node(node_port, {{"PREFETCH_COUNT", "20"}, {"NODE_LINK_TIMEOUT_MS", "2000"}}));
  CAF_REQUIRE(s.start_and_wait(in));
  CAF_REQUIRE(wait_until([&] { return s.amqp.count(s.aggregation_q) >= 200; }, 60s, 5ms));
  auditor.send_signal(SIGSTOP);
  auto frozen_at = steady::now();
  // Well before STAGE_TIMEOUT_MS (5 s here) would requeue anything.
  CAF_CHECK(wait_until([&] { return contains(in.log(), "lost the remote auditor"); }, 15s, 20ms));
  auto detected_ms = std::chrono::duration_cast<ms>(steady::now() - frozen_at).count();
  CAF_MESSAGE("frozen node declared lost after " << detected_ms << " ms");
  CAF_CHECK_LESS(detected_ms, 4500);
  auditor.send_signal(SIGCONT);
  std::vector<worker_process*> ingress{&in};
  CAF_CHECK(wait_until(
    [&] { return s.amqp.count(s.validation_q) == 0 && decided(ingress) >= voters_n; }, 60s,
    100ms));
  std::this_thread::sleep_for(1500ms);
  auto& pg = s.pg();
  std::map<std::string, long long> rows{{"valid", voters_n}};
  CAF_CHECK_EQUAL(pg.count_by_status(), rows);
  auto agg = s.amqp.take_all(s.aggregation_q);
  std::set<std::string> counted;
  for (auto& m : agg)
    counted.insert(str_field(parse_object(m.body), "voter_hash"));
  CAF_CHECK_EQUAL(set_diff({voters.begin(), voters.end()}, counted), "");
  CAF_CHECK_EQUAL(in.stop(20s).value_or(-1), 0);
  CAF_CHECK_EQUAL(auditor.stop(20s).value_or(-1), 0);
  auto info = s.amqp.inspect(s.validation_q);
  CAF_REQUIRE(info.has_value());
  CAF_CHECK_EQUAL(info->messages, 0u);
}

CAF_TEST(a stage hanging at shutdown does not hold the worker past SHUTDOWN_TIMEOUT) {
  // G6's forced path: the auditor node hangs (SIGSTOP; the link timeout and
  // stage timeout are far away), then the ingress node gets SIGTERM. It must
  // give up waiting after SHUTDOWN_TIMEOUT, exit 0, and leave what it could
  // not finish to the broker: afterwards every vote is counted exactly once.
  suite_stack s{"dist_hang", 10, 18218};
  const uint16_t node_port = 18289;
  CAF_REQUIRE(tcp_port_free(node_port));
  s.declare_queues();
  constexpr int voters_n = 600;
  std::vector<std::string> voters, bodies;
  for (int i = 0; i < voters_n; ++i) {
    voters.push_back(voter_hash(i));
    bodies.push_back(vote(voters.back(), 1, base_s() + i));
  }
  s.register_voters(voters);
  env_map slow{{"NODE_LINK_TIMEOUT_MS", "60000"}};
  auto& auditor = s.add_worker("dist-hang-auditor", 18218, auditor_node(node_port, slow));
  CAF_REQUIRE(s.start_and_wait(auditor));
  auto& in = s.add_worker("dist-hang-ingress", 18219,
                          ingress_node(node_port, {{"NODE_LINK_TIMEOUT_MS", "60000"},
                                                   {"STAGE_TIMEOUT_MS", "60000"},
                                                   {"SHUTDOWN_TIMEOUT", "2"},
                                                   {"PREFETCH_COUNT", "20"}}));
  CAF_REQUIRE(s.start_and_wait(in));
  CAF_REQUIRE(consumers_are(s, 1));
  s.amqp.publish(s.validation_q, bodies);
  CAF_REQUIRE(wait_until([&] { return s.amqp.count(s.aggregation_q) >= 100; }, 30s, 5ms));
  auditor.send_signal(SIGSTOP);
  std::this_thread::sleep_for(300ms); // batches are now stuck at the auditor
  auto t0 = steady::now();
  in.terminate();
  auto code = in.wait_exit(10s);
  auto took = std::chrono::duration_cast<ms>(steady::now() - t0).count();
  CAF_MESSAGE("ingress node exited " << code.value_or(-1) << " after " << took << " ms");
  CAF_CHECK_EQUAL(code.value_or(-1), 0);
  CAF_CHECK_LESS(took, 6000);
  CAF_CHECK(contains(in.log(), "shutdown exceeded SHUTDOWN_TIMEOUT"));

  // Everything it held goes back to the queue; a fresh ingress node finishes.
  auditor.send_signal(SIGCONT);
  auto& again = s.add_worker("dist-hang-ingress-2", 18217, ingress_node(node_port));
  CAF_REQUIRE(s.start_and_wait(again));
  std::vector<worker_process*> nodes{&again};
  CAF_CHECK(wait_until([&] { return s.amqp.count(s.aggregation_q) >= voters_n
                                    && s.amqp.count(s.validation_q) == 0; },
                       60s, 50ms));
  std::this_thread::sleep_for(1000ms);
  auto& pg = s.pg();
  std::map<std::string, long long> rows{{"valid", voters_n}};
  CAF_CHECK_EQUAL(pg.count_by_status(), rows);
  auto agg = s.amqp.take_all(s.aggregation_q);
  std::set<std::string> counted;
  for (auto& m : agg)
    counted.insert(str_field(parse_object(m.body), "voter_hash"));
  CAF_CHECK_EQUAL(set_diff({voters.begin(), voters.end()}, counted), "");
  CAF_CHECK_EQUAL(again.stop(20s).value_or(-1), 0);
  CAF_CHECK_EQUAL(auditor.stop(20s).value_or(-1), 0);
}
