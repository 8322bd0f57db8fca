// Stages on other nodes, on the deterministic coordinator: the supervisor's
// links to remote stages (found through a fake locator instead of the
// middleman), and the consumer's behaviour while a stage is missing or lost.
#define CAF_SUITE remote_stages
#include "pipeline_fixture.hpp"

#include <prometheus/registry.h>

#include "actors/node.hpp"
#include "actors/supervisor.hpp"

using namespace vw;
using namespace vw::testing;

namespace {

// Stands in for the middleman + the peer's directory: answers with `stage`
// while `reachable`, else with the error a refused connection gives.
struct locator_script {
  bool reachable = true;
  caf::strong_actor_ptr stage;
  int lookups = 0;
};

remote_locator_actor::behavior_type fake_locator(remote_locator_actor::pointer,
                                                 std::shared_ptr<locator_script> script) {
  return {
    [script](lookup_atom, const std::string&, const std::string&,
             uint16_t) -> caf::result<caf::strong_actor_ptr> {
      ++script->lookups;
      if (!script->reachable || !script->stage)
        return make_error(pipeline_errc::stage_unavailable, "connection refused");
      return script->stage;
    },
  };
}

// An auditor on a "remote node" that takes batches and never answers.
auditor_actor::behavior_type silent_auditor(auditor_actor::pointer self,
                                            std::shared_ptr<std::vector<caf::response_promise>> held) {
  return {
    [self, held](audit_atom, ballot_batch&) -> caf::result<ballot_batch> {
      auto promise = self->make_response_promise<ballot_batch>();
      held->push_back(promise);
      return promise;
    },
    [](tick_atom) {},
  };
}

struct remote_fixture : test_coordinator_fixture<> {
  using supervisor_impl = caf::stateful_actor<supervisor_state, supervisor_actor::base>;

  std::shared_ptr<journal> log = std::make_shared<journal>();
  std::shared_ptr<journal> remote_log = std::make_shared<journal>();
  std::shared_ptr<metrics> stats = std::make_shared<metrics>();
  std::shared_ptr<std::atomic<int>> exit_code = std::make_shared<std::atomic<int>>(-1);
  std::shared_ptr<locator_script> script = std::make_shared<locator_script>();
  int local_auditors = 0;
  auditor_actor remote;
  supervisor_actor sup;

  remote_fixture() {
    remote = sys.spawn(auditor, std::make_shared<fake_audit>(remote_log), stats);
    script->stage = caf::actor_cast<caf::strong_actor_ptr>(remote);
  }

  infra_factory fakes() {
    infra_factory f;
    f.input = [this] { return std::make_shared<fake_source>(log); };
    f.voters = [this] { return std::make_shared<fake_registry>(log); };
    f.claims = [this] { return std::make_shared<fake_claims>(log); };
    f.audit = [this] {
      ++local_auditors;
      return std::make_shared<fake_audit>(log);
    };
    f.output = [this] { return std::make_shared<fake_sink>(log); };
    return f;
  }

  void start(bool fallback = false, int restart_max = 3) {
    supervisor_settings s;
    s.detached = false;
    s.restart_max = restart_max;
    s.consumer.batch_max_wait = std::chrono::milliseconds{0};
    s.consumer.pace_idle_polls_with_clock = true;
    s.local_stages = {"validator", "dedup", "publisher"};
    s.remote_stages["auditor"] = remote_stage{"10.0.0.9", 4700};
    s.remote_fallback_local = fallback;
    s.locator = sys.spawn(fake_locator, script);
    sup = sys.spawn(supervisor, s, fakes(), stats, exit_code);
    sched.run();
  }

  supervisor_state& state() { return deref<supervisor_impl>(sup).state; }

  double remote_up() {
    for (auto& family : stats->registry()->Collect())
      if (family.name == "validation_remote_stage_up")
        for (auto& m : family.metric)
          return m.gauge.value;
    return -1;
  }

  ~remote_fixture() override {
    if (sup && exit_code->load() < 0 && !state().stopped) {
      for (auto& [addr, name] : state().children)
        anon_send_exit(addr, caf::exit_reason::kill);
      anon_send_exit(sup, caf::exit_reason::kill);
    }
    anon_send_exit(remote, caf::exit_reason::kill);
    sched.run();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(remote_supervision_tests, remote_fixture)

CAF_TEST(a remote stage is used instead of a local one) {
  start();
  CAF_CHECK_EQUAL(script->lookups, 1);
  CAF_CHECK_EQUAL(local_auditors, 0);
  CAF_CHECK_EQUAL(state().stages.auditor, remote);
  CAF_CHECK_EQUAL(remote_up(), 1.0);
}

CAF_TEST(losing the remote clears the stage and reconnects with backoff) {
  start();
  // The remote node goes away (its proxy dies) and refuses connections for a while.
  script->reachable = false;
  anon_send_exit(remote, caf::exit_reason::remote_link_unreachable);
  sched.run();
  CAF_CHECK(!state().stages.auditor);
  CAF_CHECK_EQUAL(remote_up(), 0.0);
  CAF_CHECK_EQUAL(local_auditors, 0); // no fallback configured: intake waits
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK_EQUAL(script->lookups, 2);
  CAF_CHECK(!state().stages.auditor);
  // The node is back (a new incarnation of the stage).
  remote = sys.spawn(auditor, std::make_shared<fake_audit>(remote_log), stats);
  script->stage = caf::actor_cast<caf::strong_actor_ptr>(remote);
  script->reachable = true;
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK_EQUAL(state().stages.auditor, remote);
  CAF_CHECK_EQUAL(remote_up(), 1.0);
  CAF_CHECK_EQUAL(exit_code->load(), -1);
}

CAF_TEST(remote losses do not spend the restart budget) {
  start(false, 1);
  for (int i = 0; i < 4; ++i) {
    anon_send_exit(remote, caf::exit_reason::remote_link_unreachable);
    sched.run();
    remote = sys.spawn(auditor, std::make_shared<fake_audit>(remote_log), stats);
    script->stage = caf::actor_cast<caf::strong_actor_ptr>(remote);
    sched.trigger_timeouts();
    sched.run();
  }
  CAF_CHECK_EQUAL(exit_code->load(), -1);
  CAF_CHECK_EQUAL(state().stages.auditor, remote);
}

CAF_TEST(with a local fallback a local stage stands in until the remote is back) {
  script->reachable = false;
  start(true);
  CAF_CHECK_EQUAL(local_auditors, 1);
  auto stand_in = state().stages.auditor;
  CAF_REQUIRE(stand_in);
  CAF_CHECK_NOT_EQUAL(stand_in, remote);
  script->reachable = true;
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK_EQUAL(state().stages.auditor, remote);
  // The stand-in was retired (its PostgreSQL connection closed), not restarted.
  CAF_CHECK(log->position("closed:postgres") >= 0);
  CAF_CHECK_EQUAL(local_auditors, 1);
}

CAF_TEST(shutdown closes local stages and leaves the remote node alone) {
  start();
  auto reply = self->request(sup, caf::infinite, stop_atom::value);
  sched.run();
  bool stopped = false;
  reply.receive([&](caf::ok_atom) { stopped = true; },
                [&](caf::error& err) { CAF_FAIL("stop failed: " << sys.render(err)); });
  CAF_CHECK(stopped);
  CAF_CHECK(log->position("closed:redis-claims") >= 0);
  CAF_CHECK_EQUAL(remote_log->position("closed:postgres"), -1);
  // The remote stage still answers.
  ballot_batch empty;
  auto answer = self->request(remote, caf::infinite, audit_atom::value, empty);
  sched.run();
  bool answered = false;
  answer.receive([&](ballot_batch&) { answered = true; }, [&](caf::error&) {});
  CAF_CHECK(answered);
}

CAF_TEST(the directory of a stage node never hands out a dead stage) {
  // A stage-only node: the auditor, served through the directory.
  supervisor_settings s;
  s.detached = false;
  s.ingress = false;
  s.local_stages = {"auditor"};
  s.directory = sys.spawn(node_directory, std::set<std::string>{"auditor"});
  sup = sys.spawn(supervisor, s, fakes(), stats, exit_code);
  sched.run();
  auto lookup = [&] {
    auto reply = self->request(s.directory, caf::infinite, lookup_atom::value,
                               std::string{"auditor"});
    sched.run();
    caf::strong_actor_ptr found;
    reply.receive([&](caf::strong_actor_ptr& h) { found = h; }, [&](caf::error&) {});
    return found;
  };
  auto first = lookup();
  CAF_REQUIRE(first);
  CAF_CHECK_EQUAL(first, caf::actor_cast<caf::strong_actor_ptr>(state().stages.auditor));
  anon_send_exit(state().stages.auditor, caf::exit_reason::kill);
  sched.run();
  CAF_CHECK(!lookup()); // restarting: stage_unavailable, not the dead handle
  sched.trigger_timeouts();
  sched.run();
  auto second = lookup();
  CAF_REQUIRE(second);
  CAF_CHECK_NOT_EQUAL(second, first);
  // Asking for a stage this node does not serve is refused.
  auto other = self->request(s.directory, caf::infinite, lookup_atom::value,
                             std::string{"publisher"});
  sched.run();
  bool refused = false;
  other.receive([&](caf::strong_actor_ptr&) {}, [&](caf::error& e) {
    refused = e.code() == static_cast<uint8_t>(pipeline_errc::unknown_stage);
  });
  CAF_CHECK(refused);
  anon_send_exit(s.directory, caf::exit_reason::kill);
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(missing_stage_tests, pipeline_fixture)

CAF_TEST(intake waits while a stage is missing) {
  auto auditor_stage = stages.auditor;
  stages.auditor = nullptr; // its node is not connected yet
  source->push(vote_json(1, 1));
  source->push(vote_json(2, 1));
  start();
  CAF_CHECK_EQUAL(source->opens, 0);
  CAF_CHECK_EQUAL(source->queue.size(), 2u);
  stages.auditor = auditor_stage;
  self->send(input, stages_atom::value, stages);
  sched.run();
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK_EQUAL(source->queue.size(), 0u);
  CAF_CHECK_EQUAL(sink->published.size(), 2u);
  CAF_CHECK(log->position("ack<=2") >= 0);
}

CAF_TEST(a batch at a lost stage is requeued at once and the channel is handed back) {
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  auto real_auditor = stages.auditor;
  stages.auditor = sys.spawn(silent_auditor, held);
  source->push(vote_json(5, 1));
  start();
  CAF_REQUIRE_EQUAL(held->size(), 1u); // the batch waits at the "remote" auditor
  CAF_CHECK_EQUAL(log->count_prefix("requeue"), 0u);
  // The supervisor saw the node go: no auditor now.
  auto lost = stages.auditor;
  stages.auditor = nullptr;
  self->send(input, stages_atom::value, stages);
  sched.run();
  // Requeued without waiting for the stage timeout, nothing acked, and the
  // prefetched deliveries go back to the broker while the stage is missing.
  CAF_CHECK(log->position("requeue:1") >= 0);
  CAF_CHECK_EQUAL(log->count_prefix("ack"), 0u);
  sched.trigger_timeouts(); // the next poll
  sched.run();
  CAF_CHECK(log->position("close") > log->position("requeue:1"));
  CAF_CHECK_EQUAL(sink->published.size(), 0u);
  // Back: the redelivery resumes its own claim and is counted once.
  stages.auditor = real_auditor;
  self->send(input, stages_atom::value, stages);
  source->push(vote_json(5, 1), true);
  sched.run();
  sched.trigger_timeouts();
  sched.run();
  sched.trigger_timeouts();
  sched.run();
  CAF_REQUIRE_EQUAL(sink->published.size(), 1u);
  CAF_CHECK_EQUAL(sink->published[0].second, verdict::valid);
  CAF_CHECK_EQUAL(claims->duplicate_counts.count(hash_of(5)), 0u);
  anon_send_exit(lost, caf::exit_reason::kill);
}

CAF_TEST_FIXTURE_SCOPE_END()
