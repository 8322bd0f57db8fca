#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "infra/config.hpp"
#include "infra/ports.hpp"

struct redisContext;
struct redisReply;

// Redis through hiredis (synchronous, with timeouts on every call). One
// connection per object, owned by one actor.
namespace vw {

struct redis_settings {
  std::string host;
  uint16_t port = 6379;
  int db = 0;
  std::string password;
  std::chrono::milliseconds timeout{5000};
  std::chrono::seconds claim_ttl{86400};

  static redis_settings from(const config& cfg);
};

// Redis keys, in one place (documented in the README).
struct redis_keys {
  static constexpr const char* valid_voters = "valid_hashes";
  static constexpr const char* voted = "voted_hashes";
  static constexpr const char* duplicate_count_prefix = "duplicate_count:";
  static constexpr const char* claim_prefix = "vote_claim:";
};

class redis_client : public voter_registry, public claim_store {
public:
  explicit redis_client(redis_settings s);
  ~redis_client() override;
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  status connect();
  void close();
  bool connected() const { return ctx_ != nullptr; }

  status known_voters(const std::vector<const std::string*>& hashes,
                      std::vector<bool>& known) override;
  status claim(std::vector<ballot>& ballots) override;
  status release(const std::vector<ballot>& ballots) override;
  status probe() override;

private:
  // Runs one command, reconnecting first if needed; the caller frees *out.
  status run(const std::vector<std::string>& argv, redisReply** out);
  status eval(const std::string& sha, const std::string& script,
              const std::vector<std::string>& args, redisReply** out);

  redis_settings settings_;
  redisContext* ctx_ = nullptr;
  std::string claim_sha_;
  std::string release_sha_;
};

} // namespace vw
