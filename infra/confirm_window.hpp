#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>

namespace vw {

// Publisher-confirm bookkeeping for one output connection, apart from the
// socket so it can be tested alone. Every published message gets a sequence
// number that keeps growing across reconnections; the broker's delivery tags
// restart at 1 on each channel. `through()` is the highest sequence number up
// to which every message is confirmed: what is safe to ack upstream (G1).
class confirm_window {
public:
  // A new channel: messages sent before it can no longer be confirmed.
  void open_channel() {
    base_ = next_ - 1;
    through_ = base_;
    ahead_.clear();
  }

  // The session is gone: nothing outstanding will be confirmed.
  void forget() { ahead_.clear(); }

  // Registers one published message and returns its sequence number.
  uint64_t sent() {
    ahead_.push_back(false);
    return next_++;
  }

  // Sequence number the next message will get.
  uint64_t next() const { return next_; }

  // basic.ack from the broker for `tag` on the current channel.
  void confirm(uint64_t tag, bool multiple) {
    if (tag == 0)
      return;
    auto seq = base_ + tag;
    if (seq <= through_)
      return;
    auto offset = seq - through_; // 1 = the oldest unconfirmed message
    if (offset > ahead_.size())
      offset = multiple ? ahead_.size() : 0; // a tag never sent: only what was
    if (offset == 0)
      return;
    if (multiple)
      std::fill(ahead_.begin(), ahead_.begin() + static_cast<std::ptrdiff_t>(offset), true);
    else
      ahead_[offset - 1] = true;
    while (!ahead_.empty() && ahead_.front()) {
      ahead_.pop_front();
      ++through_;
    }
  }

  uint64_t through() const { return through_; }

private:
  uint64_t next_ = 1;         // of the next message published
  uint64_t base_ = 0;         // delivery tag t on this channel is sequence number base_ + t
  uint64_t through_ = 0;      // every message up to here is confirmed
  std::deque<bool> ahead_;    // messages after `through_`, confirmed out of order
};

} // namespace vw
