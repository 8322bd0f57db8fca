#include "actors/node.hpp"

#include <caf/actor_cast.hpp>
#include <caf/node_id.hpp>

#include "messages/errors.hpp"

namespace vw {

caf::strong_actor_ptr stage_handle(const pipeline_stages& stages, const std::string& name) {
  if (name == "validator")
    return caf::actor_cast<caf::strong_actor_ptr>(stages.validator);
  if (name == "dedup")
    return caf::actor_cast<caf::strong_actor_ptr>(stages.dedup);
  if (name == "auditor")
    return caf::actor_cast<caf::strong_actor_ptr>(stages.auditor);
  if (name == "publisher")
    return caf::actor_cast<caf::strong_actor_ptr>(stages.publisher);
  return nullptr;
}

void set_stage_handle(pipeline_stages& stages, const std::string& name,
                      const caf::strong_actor_ptr& handle) {
  if (name == "validator")
    stages.validator = caf::actor_cast<validator_actor>(handle);
  else if (name == "dedup")
    stages.dedup = caf::actor_cast<dedup_actor>(handle);
  else if (name == "auditor")
    stages.auditor = caf::actor_cast<auditor_actor>(handle);
  else if (name == "publisher")
    stages.publisher = caf::actor_cast<publisher_actor>(handle);
}

node_directory_admin_actor::behavior_type
node_directory(node_directory_admin_actor::stateful_pointer<node_directory_state> self,
               std::set<std::string> served) {
  self->state.served = std::move(served);
  return {
    [self](lookup_atom, const std::string& name) -> caf::result<caf::strong_actor_ptr> {
      auto& st = self->state;
      if (st.served.count(name) == 0)
        return make_error(pipeline_errc::unknown_stage, "this node does not serve the " + name);
      auto handle = stage_handle(st.stages, name);
      if (!handle)
        return make_error(pipeline_errc::stage_unavailable,
                          "the " + name + " is restarting on this node");
      return handle;
    },
    [self](stages_atom, pipeline_stages& stages) { self->state.stages = std::move(stages); },
  };
}

remote_locator_actor::behavior_type
remote_locator(remote_locator_actor::stateful_pointer<remote_locator_state> self,
               caf::io::middleman_actor middleman, std::chrono::milliseconds timeout) {
  self->state.middleman = std::move(middleman);
  self->state.timeout = timeout;
  return {
    [self](lookup_atom, const std::string& stage, const std::string& host,
           uint16_t port) -> caf::result<caf::strong_actor_ptr> {
      auto promise = self->make_response_promise<caf::strong_actor_ptr>();
      auto timeout = self->state.timeout;
      self->request(self->state.middleman, timeout, caf::connect_atom::value, host, port)
        .then(
          [self, promise, stage, timeout](const caf::node_id&, caf::strong_actor_ptr& peer,
                                          const std::set<std::string>&) mutable {
            if (!peer) {
              promise.deliver(make_error(pipeline_errc::stage_unavailable,
                                         "the node publishes no directory on that port"));
              return;
            }
            auto directory = caf::actor_cast<node_directory_actor>(peer);
            self->request(directory, timeout, lookup_atom::value, stage)
              .then([promise](caf::strong_actor_ptr& handle) mutable { promise.deliver(handle); },
                    [promise](caf::error& err) mutable { promise.deliver(err); });
          },
          [promise](caf::error& err) mutable { promise.deliver(err); });
      return promise;
    },
  };
}

} // namespace vw
