#pragma once

#include <chrono>
#include <set>
#include <string>

#include <caf/io/middleman_actor.hpp>

#include "actors/interfaces.hpp"

// The two actors that let stages live on other nodes (DESIGN §4): the
// directory a node publishes, and the locator an ingress node asks for a
// remote stage.
namespace vw {

struct node_directory_state {
  std::set<std::string> served; // the stages this node offers
  pipeline_stages stages;       // their current handles
  static inline const char* name = "node_directory";
};

// Answers lookups for the stages in `served` with their current handle.
node_directory_admin_actor::behavior_type
node_directory(node_directory_admin_actor::stateful_pointer<node_directory_state> self,
               std::set<std::string> served);

struct remote_locator_state {
  // Not an aggregate: CAF would try to build the state from the actor pointer.
  remote_locator_state() = default;
  caf::io::middleman_actor middleman;
  std::chrono::milliseconds timeout{5000};
  static inline const char* name = "remote_locator";
};

// Connects through `middleman` (the plain or the OpenSSL one) and asks the
// peer's directory; every step bounded by `timeout`.
remote_locator_actor::behavior_type
remote_locator(remote_locator_actor::stateful_pointer<remote_locator_state> self,
               caf::io::middleman_actor middleman, std::chrono::milliseconds timeout);

// The handle of `name` in `stages` (null if none).
caf::strong_actor_ptr stage_handle(const pipeline_stages& stages, const std::string& name);
// Sets `name` in `stages` to `handle` (null clears it).
void set_stage_handle(pipeline_stages& stages, const std::string& name,
                      const caf::strong_actor_ptr& handle);

} // namespace vw
