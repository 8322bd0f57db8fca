#pragma once

#include <pthread.h>

#include <caf/abstract_actor.hpp>

namespace vw {

// Names the thread of a detached stage ("vw-consumer"; at most 15 characters),
// so `top -H`, perf, tools/cpu-split.sh and gdb stack dumps say which stage a
// thread runs. A scheduled actor shares its worker thread and leaves it alone.
// Call from the actor's behavior function, which runs on the actor's thread.
template <class Self>
void name_stage_thread(Self* self, const char* name) {
  if (self->getf(caf::abstract_actor::is_detached_flag))
    pthread_setname_np(pthread_self(), name);
}

} // namespace vw
