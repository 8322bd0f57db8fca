#pragma once

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "infra/ports.hpp"

// In-memory stand-ins for RabbitMQ, Redis and PostgreSQL behind the infra
// interfaces. They share one event journal so tests can check ordering
// ("audit before publish before ack").
namespace vw::testing {

struct journal {
  std::vector<std::string> events;

  void add(std::string e) { events.push_back(std::move(e)); }
  // Position of the first event equal to `e`, or -1.
  long position(const std::string& e) const {
    auto it = std::find(events.begin(), events.end(), e);
    return it == events.end() ? -1 : static_cast<long>(it - events.begin());
  }
  size_t count_prefix(const std::string& prefix) const {
    return static_cast<size_t>(std::count_if(events.begin(), events.end(), [&](auto& e) {
      return e.rfind(prefix, 0) == 0;
    }));
  }
};

inline std::string hash_of(int i) {
  // 64 lower-case hex characters, distinct per i.
  char buf[65];
  std::snprintf(buf, sizeof(buf), "%016x%016x%016x%016x", i, i * 7 + 1, i * 13 + 2, i * 17 + 3);
  return buf;
}

inline std::string vote_json(int voter, int candidate, const std::string& extra = "") {
  return R"({"voter_hash":")" + hash_of(voter) + R"(","candidate_id":)" + std::to_string(candidate)
         + extra + "}";
}

class fake_source : public delivery_source {
public:
  explicit fake_source(std::shared_ptr<journal> j) : log(std::move(j)) {}
  ~fake_source() override { log->add("closed:rabbitmq-consumer"); }

  std::shared_ptr<journal> log;
  std::deque<delivery> queue;
  uint64_t next_tag = 1;
  bool fail_open = false;
  bool broken = false;
  int opens = 0;

  void push(std::string body, bool redelivered = false) {
    delivery d;
    d.tag = next_tag++;
    d.redelivered = redelivered;
    d.body = std::move(body);
    queue.push_back(std::move(d));
  }

  status open() override {
    ++opens;
    if (fail_open)
      return status::failure("connection refused");
    broken = false;
    log->add("open");
    return status::ok();
  }
  std::optional<delivery> next(std::chrono::microseconds) override {
    if (queue.empty() || broken)
      return std::nullopt;
    auto d = std::move(queue.front());
    queue.pop_front();
    return d;
  }
  status ack(uint64_t tag, bool multiple) override {
    log->add((multiple ? "ack<=" : "ack:") + std::to_string(tag));
    return status::ok();
  }
  status requeue(uint64_t tag) override {
    log->add("requeue:" + std::to_string(tag));
    return status::ok();
  }
  status reject(uint64_t tag) override {
    log->add("reject:" + std::to_string(tag));
    return status::ok();
  }
  status cancel() override {
    log->add("cancel");
    return status::ok();
  }
  void close() override { log->add("close"); }
  bool healthy() const override { return !broken; }
  std::string last_error() const override { return "fake connection lost"; }
};

class fake_registry : public voter_registry {
public:
  explicit fake_registry(std::shared_ptr<journal> j) : log(std::move(j)) {}
  ~fake_registry() override { log->add("closed:redis-registry"); }

  std::shared_ptr<journal> log;
  std::set<std::string> voters;
  bool down = false;

  status known_voters(const std::vector<const std::string*>& hashes,
                      std::vector<bool>& known) override {
    if (down)
      return status::failure("Redis connection refused");
    known.clear();
    for (auto* h : hashes)
      known.push_back(voters.count(*h) > 0);
    return status::ok();
  }
  status probe() override { return down ? status::failure("Redis connection refused") : status::ok(); }
};

// The claim semantics of the Lua script, in memory.
class fake_claims : public claim_store {
public:
  explicit fake_claims(std::shared_ptr<journal> j) : log(std::move(j)) {}
  ~fake_claims() override { log->add("closed:redis-claims"); }

  std::shared_ptr<journal> log;
  std::map<std::string, std::string> claims; // hash -> fingerprint
  std::map<std::string, int64_t> duplicate_counts;
  bool down = false;

  status claim(std::vector<ballot>& ballots) override {
    if (down)
      return status::failure("Redis connection refused");
    std::set<std::string> won;
    for (auto& b : ballots) {
      if (b.status != verdict::pending)
        continue;
      auto& h = b.content.voter_hash;
      auto it = claims.find(h);
      if (won.count(h) > 0) {
        b.claim = claim_result::taken;
        b.status = verdict::duplicate;
        b.duplicate_count = ++duplicate_counts[h];
        b.review_reason = "voter has already voted";
      } else if (it == claims.end()) {
        claims[h] = b.content.fingerprint;
        b.claim = claim_result::fresh;
        b.status = verdict::valid;
        won.insert(h);
        log->add("claim:" + h);
      } else if (b.redelivered && it->second == b.content.fingerprint) {
        b.claim = claim_result::resumed;
        b.status = verdict::valid;
        won.insert(h);
      } else {
        b.claim = claim_result::taken;
        b.status = verdict::duplicate;
        b.duplicate_count = ++duplicate_counts[h];
        b.review_reason = "voter has already voted";
      }
    }
    return status::ok();
  }
  status release(const std::vector<ballot>& ballots) override {
    if (down)
      return status::failure("Redis connection refused");
    for (auto& b : ballots)
      if (b.claim == claim_result::fresh) {
        auto it = claims.find(b.content.voter_hash);
        if (it != claims.end() && it->second == b.content.fingerprint) {
          claims.erase(it);
          log->add("release:" + b.content.voter_hash);
        }
      }
    return status::ok();
  }
};

class fake_audit : public audit_log {
public:
  explicit fake_audit(std::shared_ptr<journal> j) : log(std::move(j)) {}
  ~fake_audit() override { log->add("closed:postgres"); }

  std::shared_ptr<journal> log;
  std::vector<std::pair<std::string, verdict>> rows;
  bool down = false;

  status record(std::vector<ballot>& ballots, int64_t, const std::string&) override {
    if (down)
      return status::failure("PostgreSQL connection refused");
    for (auto& b : ballots) {
      rows.emplace_back(b.content.voter_hash, b.status);
      log->add("audit:" + b.content.voter_hash);
    }
    return status::ok();
  }
  status probe() override {
    return down ? status::failure("PostgreSQL connection refused") : status::ok();
  }
};

class fake_sink : public vote_sink {
public:
  explicit fake_sink(std::shared_ptr<journal> j) : log(std::move(j)) {}
  ~fake_sink() override { log->add("closed:rabbitmq-publisher"); }

  std::shared_ptr<journal> log;
  std::vector<std::pair<std::string, verdict>> published;
  bool down = false;
  bool hold_confirms = false; // the broker has not confirmed anything yet
  uint64_t sent = 0;
  uint64_t confirmed = 0;

  status send(const std::vector<ballot>& ballots, int64_t, const std::string&,
              uint64_t& last) override {
    last = 0;
    if (down)
      return status::failure("RabbitMQ connection refused");
    for (auto& b : ballots) {
      published.emplace_back(b.content.voter_hash, b.status);
      log->add("publish:" + b.content.voter_hash);
      last = ++sent;
    }
    return status::ok();
  }
  status await_confirms(std::chrono::microseconds, uint64_t& through) override {
    through = confirmed;
    if (down && confirmed < sent)
      return status::failure("publisher confirm timed out");
    if (!hold_confirms)
      confirmed = sent;
    through = confirmed;
    return status::ok();
  }
  status probe() override { return down ? status::failure("no broker") : status::ok(); }
};

} // namespace vw::testing
