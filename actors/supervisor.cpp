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

caf::actor_addr address_of(self_ptr self, const std::string& name) {
  auto& st = self->state;
  for (auto& [addr, n] : st.children)
    if (n == name)
      return addr;
  return {};
}

bool is_stage(const std::string& name) {
  return name == "validator" || name == "dedup" || name == "auditor" || name == "publisher";
}

// Tells the consumer (and the node directory) which stages to use now.
void announce_stages(self_ptr self) {
  auto& st = self->state;
  if (st.input)
    self->send(st.input, stages_atom::value, st.stages);
  if (st.settings.directory)
    self->send(st.settings.directory, stages_atom::value, st.stages);
}

void start_local(self_ptr self, const std::string& name) {
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
  }
}

void connect_remote(self_ptr self, const std::string& name);

// Starts child `name`; false if nothing was started (a remote stage, or a
// stand-in that is no longer needed or already running).
bool start(self_ptr self, const std::string& name) {
  auto& st = self->state;
  if (is_stage(name)) {
    if (auto it = st.remotes.find(name); it != st.remotes.end()) {
      // A failed local stand-in is restarted only while its remote is away.
      if (!it->second.fallback || it->second.connected || address_of(self, name))
        return false;
      start_local(self, name);
    } else {
      if (!st.settings.local_stages.count(name))
        return false;
      start_local(self, name);
    }
  } else if (name == "consumer") {
    if (!st.settings.ingress)
      return false;
    st.input = spawn_child(self, consumer, st.factory.input(), st.stages, st.settings.consumer,
                           st.stats);
    adopt(self, st.input, name);
  } else if (name == "queue_monitor") {
    if (!st.settings.ingress || !st.factory.queue_depth)
      return false;
    st.depth_monitor = spawn_child(self, queue_monitor, st.factory.queue_depth(), st.stats,
                                   st.settings.queue_poll_interval);
    adopt(self, st.depth_monitor, name);
    return true;
  }
  // A (re)started stage or consumer: tell the consumer and the directory.
  announce_stages(self);
  return true;
}

// ---- remote stages -------------------------------------------------------------

constexpr const char* remote_prefix = "remote:";

void schedule_reconnect(self_ptr self, const std::string& name) {
  auto& link = self->state.remotes[name];
  auto delay = link.retry.next();
  self->delayed_send(self, delay, restart_atom::value, std::string{remote_prefix} + name);
}

// While the remote is away: a local stand-in if configured, else nothing
// (the consumer pauses intake while a stage is missing).
void cover_for_remote(self_ptr self, const std::string& name) {
  auto& st = self->state;
  auto& link = st.remotes[name];
  if (!st.settings.remote_fallback_local || link.fallback)
    return;
  link.fallback = true;
  start_local(self, name);
  announce_stages(self);
}

void on_remote_failed(self_ptr self, const std::string& name, const caf::error& err) {
  auto& st = self->state;
  auto& link = st.remotes[name];
  link.connecting = false;
  if (st.stopping)
    return;
  ++link.failures;
  st.stats->remote_link(name, link.at.text(), false);
  auto what = self->home_system().render(err);
  if (link.failures == 1)
    st.log->warn("cannot reach the remote {} at {}: {}; {}, retrying with backoff", name,
                 link.at.text(), what,
                 st.settings.remote_fallback_local ? "a local " + name + " stands in"
                                                   : "intake waits until it answers");
  else
    st.log->debug("remote {} at {} still unreachable: {}", name, link.at.text(), what);
  cover_for_remote(self, name);
  schedule_reconnect(self, name);
}

void on_remote_up(self_ptr self, const std::string& name, const caf::strong_actor_ptr& handle) {
  auto& st = self->state;
  auto& link = st.remotes[name];
  link.connecting = false;
  if (st.stopping)
    return;
  if (!handle) {
    on_remote_failed(self, name,
                     make_error(pipeline_errc::stage_unavailable, "the node returned no stage"));
    return;
  }
  auto h = caf::actor_cast<caf::actor>(handle);
  self->monitor(h);
  link.addr = h.address();
  link.connected = true;
  st.remote_addrs[link.addr] = name;
  set_stage_handle(st.stages, name, handle);
  if (link.fallback) {
    // Back to the remote: retire the stand-in (its in-flight batches are requeued).
    link.fallback = false;
    if (auto addr = address_of(self, name)) {
      st.children.erase(addr);
      self->send_exit(addr, caf::exit_reason::user_shutdown);
    }
  }
  st.stats->remote_link(name, link.at.text(), true);
  if (!link.ever_connected)
    st.log->info("using the remote {} at {}", name, link.at.text());
  else if (link.failures > 0)
    st.log->info("remote {} at {} is back after {} failed attempts; resuming", name,
                 link.at.text(), link.failures);
  else
    st.log->info("remote {} at {} is back; resuming", name, link.at.text());
  link.ever_connected = true;
  link.failures = 0;
  link.retry.reset();
  announce_stages(self);
}

void connect_remote(self_ptr self, const std::string& name) {
  auto& st = self->state;
  auto& link = st.remotes[name];
  if (st.stopping || link.connected || link.connecting)
    return;
  link.connecting = true;
  // The locator bounds each of its two steps by the stage timeout.
  self
    ->request(st.settings.locator, st.settings.consumer.stage_timeout * 3, lookup_atom::value,
              name, link.at.host, link.at.port)
    .then([self, name](caf::strong_actor_ptr& handle) { on_remote_up(self, name, handle); },
          [self, name](caf::error& err) { on_remote_failed(self, name, err); });
}

// The remote stage (or its whole node) is gone: in-flight batches there fail,
// intake pauses (or the stand-in takes over) and we reconnect with backoff.
void on_remote_down(self_ptr self, const std::string& name, const caf::error& reason) {
  auto& st = self->state;
  auto& link = st.remotes[name];
  link.connected = false;
  link.addr = caf::actor_addr{};
  set_stage_handle(st.stages, name, nullptr);
  st.stats->remote_link(name, link.at.text(), false);
  if (st.stopping)
    return;
  st.log->warn("lost the remote {} at {} ({}); its in-flight batches are requeued, {}, "
               "reconnecting with backoff",
               name, link.at.text(), self->home_system().render(reason),
               st.settings.remote_fallback_local ? "a local " + name + " stands in"
                                                 : "intake paused until it is back");
  cover_for_remote(self, name);
  announce_stages(self);
  link.retry.reset();
  schedule_reconnect(self, name);
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
  if (auto r = st.remote_addrs.find(dm.source); r != st.remote_addrs.end()) {
    auto name = r->second;
    st.remote_addrs.erase(r);
    on_remote_down(self, name, dm.reason);
    return;
  }
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
  if (is_stage(name) && st.settings.directory) {
    // Peers asking meanwhile get stage_unavailable, not the dead handle. The
    // local consumer keeps it: requests to a dead local actor fail at once.
    auto view = st.stages;
    set_stage_handle(view, name, nullptr);
    self->send(st.settings.directory, stages_atom::value, view);
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
  for (auto& [name, at] : st.settings.remote_stages) {
    auto& link = st.remotes[name];
    link.at = at;
    link.retry = backoff{st.settings.restart_backoff_initial, st.settings.restart_backoff_max};
    st.stats->remote_link(name, at.text(), false);
  }
  for (auto& name : child_table::all)
    start(self, name);
  for (auto& [name, link] : st.remotes)
    connect_remote(self, name);
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
      if (name.rfind(remote_prefix, 0) == 0) {
        connect_remote(self, name.substr(std::char_traits<char>::length(remote_prefix)));
        return;
      }
      if (start(self, name))
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
