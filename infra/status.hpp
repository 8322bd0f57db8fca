#pragma once

#include <string>
#include <utility>

namespace vw {

// The result of a call into an external system: ok, or one line saying what
// failed. Infra code returns it instead of throwing across its boundary.
class status {
public:
  static status ok() { return status{}; }
  static status failure(std::string what) { return status{std::move(what)}; }

  explicit operator bool() const { return failed_ == false; }
  bool failed() const { return failed_; }
  const std::string& what() const { return what_; }

private:
  status() = default;
  explicit status(std::string what) : failed_(true), what_(std::move(what)) {}

  bool failed_ = false;
  std::string what_;
};

} // namespace vw
