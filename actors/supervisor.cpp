#include "actors/supervisor.hpp"

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>

#include "actors/auditor.hpp"
#include "actors/dedup.hpp"
#include "actors/publisher.hpp"
#include "actors/queue_monitor.hpp"
#include "actors/validator.hpp"

namespace vw {

namespace {

using self_ptr = supervisor_actor::stateful_pointer<supervisor_state>;

template <class F, class... Ts>
auto spawn_child(self_ptr self, F fun, Ts&&... xs) {
  auto& sys = self->home_system();
  if (self->state.settings.detached)
    return sys.spawn<caf::detached>(fun, std::forward<Ts>(xs)...);
  return sys.spawn(fun, std::forward<Ts>(xs)...);
}

template <class Handle>
void adopt(self_ptr self, const Handle& h, const std::string& name) {
  self->monitor(h);
  self->state.children[h.address()] = name;
}

void start(self_ptr self, const std::string& name) {
  auto& st = self->state;
  if (name == "validator") {
    st.stages.validator = spawn_child(self, validator, st.factory.voters(), st.stats);
    adopt(self, st.stages.validator, name);
  } else if (name == "dedup") {
    st.stages.dedup = spawn_child(self, dedup, st.factory.claims(), st.stats);
    adopt(self, st.stages.dedup, name);
  } else if (name == "auditor") {
    st.stages.auditor = spawn_child(self, auditor, st.factory.audit(), st.stats);
    adopt(self, st.stages.auditor, name);
  } else if (name == "publisher") {
    st.stages.publisher = spawn_child(self, publisher, st.factory.output(), st.stats);
    adopt(self, st.stages.publisher, name);
  } else if (name == "consumer") {
    st.input = spawn_child(self, consumer, st.factory.input(), st.stages, st.settings.consumer,
                           st.stats);
    adopt(self, st.input, name);
    return;
  } else if (name == "queue_monitor") {
    if (!st.factory.queue_depth)
      return;
    st.depth_monitor = spawn_child(self, queue_monitor, st.factory.queue_depth(), st.stats,
                                   st.settings.queue_poll_interval);
    adopt(self, st.depth_monitor, name);
    return;
  }
  // A restarted stage: the consumer sends its next batches there.
  if (st.input)
    self->send(st.input, stages_atom::value, st.stages);
}

caf::actor_addr address_of(self_ptr self, const std::string& name) {
  auto& st = self->state;
  for (auto& [addr, n] : st.children)
    if (n == name)
      return addr;
  return {};
}

void finish_stop(self_ptr self) {
  auto& st = self->state;
  if (st.stopped)
    return;
  st.stopped = true;
  st.log->info("shutdown complete: RabbitMQ, Redis and PostgreSQL connections closed");
  st.stop_promise.deliver(caf::ok_atom::value);
  self->quit();
}

// Closes the next group in child_table::shutdown_order once the previous one exited.
void next_shutdown_step(self_ptr self) {
  auto& st = self->state;
  while (st.awaiting_exit.empty() && st.shutdown_step < child_table::shutdown_order.size()) {
    for (auto& name : child_table::shutdown_order[st.shutdown_step]) {
      auto addr = address_of(self, name);
      if (!addr)
        continue;
      st.awaiting_exit.insert(name);
      self->send_exit(addr, caf::exit_reason::user_shutdown);
    }
    ++st.shutdown_step;
  }
  if (st.awaiting_exit.empty())
    finish_stop(self);
}

void on_child_down(self_ptr self, caf::down_msg& dm) {
  auto& st = self->state;
  auto it = st.children.find(dm.source);
  if (it == st.children.end())
    return;
  auto name = it->second;
  st.children.erase(it);
  if (st.stopping) {
    st.awaiting_exit.erase(name);
    next_shutdown_step(self);
    return;
  }
  auto now = std::chrono::steady_clock::now();
  st.restarts.push_back(now);
  while (!st.restarts.empty() && now - st.restarts.front() > st.settings.restart_window)
    st.restarts.pop_front();
  if (static_cast<int>(st.restarts.size()) > st.settings.restart_max) {
    st.log->critical("{} failed ({}) and the restart budget is spent ({} restarts within {} s); "
                     "exiting non-zero so the orchestrator restarts the worker",
                     name, caf::to_string(dm.reason), st.settings.restart_max,
                     st.settings.restart_window.count());
    if (st.exit_code)
      st.exit_code->store(1);
    for (auto& [addr, n] : st.children)
      self->send_exit(addr, caf::exit_reason::kill);
    self->quit(dm.reason);
    return;
  }
  auto delay = st.restart_backoff.next();
  st.log->error("{} stopped unexpectedly ({}); restarting it in {} ms", name,
                caf::to_string(dm.reason), delay.count());
  self->delayed_send(self, delay, restart_atom::value, name);
}

} // namespace

supervisor_actor::behavior_type
supervisor(supervisor_actor::stateful_pointer<supervisor_state> self, supervisor_settings settings,
           infra_factory factory, std::shared_ptr<metrics> stats,
           std::shared_ptr<std::atomic<int>> exit_code) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.factory = std::move(factory);
  st.stats = std::move(stats);
  st.exit_code = std::move(exit_code);
  st.restart_backoff = backoff{st.settings.restart_backoff_initial,
                               st.settings.restart_backoff_max};
  self->set_down_handler([self](caf::down_msg& dm) { on_child_down(self, dm); });
  for (auto& name : child_table::all)
    start(self, name);
  return {
    [self](stop_atom) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      st.stop_promise = self->make_response_promise<caf::ok_atom>();
      auto promise = st.stop_promise;
      if (st.stopping)
        return promise;
      st.stopping = true;
      st.log->info("stopping: no new deliveries, finishing in-flight work (at most {} s)",
                   st.settings.shutdown_timeout.count());
      self->delayed_send(self, st.settings.shutdown_timeout, deadline_atom::value);
      if (!st.input) {
        next_shutdown_step(self);
        return promise;
      }
      self->request(st.input, st.settings.shutdown_timeout, drain_atom::value)
        .then([self](drained_atom) { next_shutdown_step(self); },
              [self](caf::error& err) {
                self->state.log->warn("consumer did not drain cleanly ({}); closing anyway, "
                                      "unacked deliveries will be redelivered",
                                      caf::to_string(err));
                next_shutdown_step(self);
              });
      return promise;
    },
    [self](restart_atom, const std::string& name) {
      if (self->state.stopping)
        return;
      start(self, name);
      self->state.log->info("{} restarted", name);
    },
    [self](deadline_atom) {
      auto& st = self->state;
      if (st.stopped)
        return;
      st.log->warn("shutdown exceeded SHUTDOWN_TIMEOUT ({} s); closing now, unacked deliveries "
                   "will be redelivered by the broker",
                   st.settings.shutdown_timeout.count());
      for (auto& [addr, n] : st.children)
        self->send_exit(addr, caf::exit_reason::kill);
      finish_stop(self);
    },
  };
}

} // namespace vw
