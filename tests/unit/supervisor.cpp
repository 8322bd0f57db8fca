#define CAF_SUITE supervisor
#include <caf/test/dsl.hpp>

#include "actors/supervisor.hpp"
#include "fakes.hpp"

using namespace vw;
using namespace vw::testing;

namespace {

struct supervisor_fixture : test_coordinator_fixture<> {
  using supervisor_impl = caf::stateful_actor<supervisor_state, supervisor_actor::base>;

  std::shared_ptr<journal> log = std::make_shared<journal>();
  std::shared_ptr<metrics> stats = std::make_shared<metrics>();
  std::shared_ptr<std::atomic<int>> exit_code = std::make_shared<std::atomic<int>>(-1);
  int spawned_registries = 0;
  supervisor_actor sup;

  infra_factory fakes() {
    infra_factory f;
    f.input = [this] { return std::make_shared<fake_source>(log); };
    f.voters = [this] {
      ++spawned_registries;
      return std::make_shared<fake_registry>(log);
    };
    f.claims = [this] { return std::make_shared<fake_claims>(log); };
    f.audit = [this] { return std::make_shared<fake_audit>(log); };
    f.output = [this] { return std::make_shared<fake_sink>(log); };
    return f;
  }

  void start(int restart_max = 3) {
    supervisor_settings s;
    s.detached = false;
    s.restart_max = restart_max;
    s.restart_window = std::chrono::seconds{60};
    s.consumer.batch_max_wait = std::chrono::milliseconds{0};
    s.consumer.pace_idle_polls_with_clock = true;
    sup = sys.spawn(supervisor, s, fakes(), stats, exit_code);
    sched.run();
  }

  supervisor_state& state() { return deref<supervisor_impl>(sup).state; }

  ~supervisor_fixture() override {
    // The base fixture runs until no activity remains: nothing may still poll.
    if (sup && exit_code->load() < 0 && !state().stopped) {
      for (auto& [addr, name] : state().children)
        anon_send_exit(addr, caf::exit_reason::kill);
      anon_send_exit(sup, caf::exit_reason::kill);
      sched.run();
    }
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(supervisor_tests, supervisor_fixture)

CAF_TEST(shutdown closes RabbitMQ then Redis then PostgreSQL) {
  start();
  auto reply = self->request(sup, caf::infinite, stop_atom::value);
  sched.run();
  bool stopped = false;
  reply.receive([&](caf::ok_atom) { stopped = true; },
                [&](caf::error& err) { CAF_FAIL("stop failed: " << sys.render(err)); });
  CAF_CHECK(stopped);
  auto consumer_closed = log->position("closed:rabbitmq-consumer");
  auto cancelled = log->position("cancel");
  auto publisher_closed = log->position("closed:rabbitmq-publisher");
  auto registry_closed = log->position("closed:redis-registry");
  auto claims_closed = log->position("closed:redis-claims");
  auto postgres_closed = log->position("closed:postgres");
  CAF_REQUIRE(consumer_closed >= 0 && publisher_closed >= 0 && registry_closed >= 0
              && claims_closed >= 0 && postgres_closed >= 0 && cancelled >= 0);
  CAF_CHECK_LESS(cancelled, consumer_closed);
  CAF_CHECK_LESS(consumer_closed, registry_closed);
  CAF_CHECK_LESS(publisher_closed, registry_closed);
  CAF_CHECK_LESS(publisher_closed, claims_closed);
  CAF_CHECK_LESS(registry_closed, postgres_closed);
  CAF_CHECK_LESS(claims_closed, postgres_closed);
}

CAF_TEST(a failed stage is restarted and the consumer gets the new one) {
  start();
  CAF_CHECK_EQUAL(spawned_registries, 1);
  auto old_validator = state().stages.validator;
  anon_send_exit(old_validator, caf::exit_reason::kill);
  sched.run();
  sched.trigger_timeouts(); // restart backoff
  sched.run();
  CAF_CHECK_EQUAL(spawned_registries, 2);
  CAF_CHECK_NOT_EQUAL(state().stages.validator, old_validator);
  CAF_CHECK_EQUAL(exit_code->load(), -1);
}

CAF_TEST(past the restart budget the process is told to exit non zero) {
  start(2);
  for (int i = 0; i < 3; ++i) {
    anon_send_exit(state().stages.validator, caf::exit_reason::kill);
    sched.run();
    if (exit_code->load() >= 0)
      break;
    sched.trigger_timeouts();
    sched.run();
  }
  CAF_CHECK_EQUAL(exit_code->load(), 1);
}

CAF_TEST_FIXTURE_SCOPE_END()
