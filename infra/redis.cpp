#include "infra/redis.hpp"

#include <memory>

#include <hiredis/hiredis.h>

namespace vw {

namespace {

// Claims each voter atomically. ARGV holds the claim TTL, then one triple per
// vote: hash, fingerprint, redelivered flag. Per vote the result is 0 (fresh
// claim), -1 (a redelivery of the claiming message: resume) or the new
// duplicate count. SADD returning 1 *is* the claim; the claim key records
// which message made it so a redelivery is not mistaken for a second vote.
// Within one call a voter has one winner: once a message claimed or resumed
// the voter, any later one (even a byte-identical one, both redelivered) is a
// duplicate. A duplicate earlier in the call does not stop the claim's owner
// from resuming after it.
constexpr const char* claim_script = R"lua(
local ttl = tonumber(ARGV[1])
local out = {}
local won = {}
for i = 2, #ARGV, 3 do
  local h, fp, redelivered = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local claim_key = 'vote_claim:' .. h
  if won[h] then
    out[#out + 1] = redis.call('INCR', 'duplicate_count:' .. h)
  elseif redis.call('SADD', 'voted_hashes', h) == 1 then
    if ttl > 0 then
      redis.call('SET', claim_key, fp, 'EX', ttl)
    else
      redis.call('SET', claim_key, fp)
    end
    out[#out + 1] = 0
    won[h] = true
  elseif redelivered == '1' and redis.call('GET', claim_key) == fp then
    out[#out + 1] = -1
    won[h] = true
  else
    out[#out + 1] = redis.call('INCR', 'duplicate_count:' .. h)
  end
end
return out
)lua";

// Releases claims this worker made, only where the claim key still names the
// same message. ARGV: pairs of hash, fingerprint.
constexpr const char* release_script = R"lua(
local n = 0
for i = 1, #ARGV, 2 do
  local h, fp = ARGV[i], ARGV[i + 1]
  if redis.call('GET', 'vote_claim:' .. h) == fp then
    redis.call('SREM', 'voted_hashes', h)
    redis.call('DEL', 'vote_claim:' .. h)
    n = n + 1
  end
end
return n
)lua";

struct reply_deleter {
  void operator()(redisReply* r) const {
    if (r != nullptr)
      freeReplyObject(r);
  }
};
using reply_guard = std::unique_ptr<redisReply, reply_deleter>;

timeval to_timeval(std::chrono::milliseconds d) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

} // namespace

redis_settings redis_settings::from(const config& cfg) {
  redis_settings s;
  s.host = cfg.redis_host;
  s.port = cfg.redis_port;
  s.db = cfg.redis_db;
  s.password = cfg.redis_password;
  s.timeout = std::chrono::milliseconds{cfg.redis_timeout_ms};
  s.claim_ttl = std::chrono::seconds{cfg.claim_ttl_s};
  return s;
}

redis_client::redis_client(redis_settings s) : settings_(std::move(s)) {}

redis_client::~redis_client() {
  close();
}

void redis_client::close() {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
}

status redis_client::connect() {
  close();
  auto tv = to_timeval(settings_.timeout);
  auto where = settings_.host + ":" + std::to_string(settings_.port);
  ctx_ = redisConnectWithTimeout(settings_.host.c_str(), settings_.port, tv);
  if (ctx_ == nullptr || ctx_->err != 0) {
    std::string why = ctx_ != nullptr ? ctx_->errstr : "out of memory";
    close();
    return status::failure("cannot connect to Redis at " + where + ": " + why);
  }
  redisSetTimeout(ctx_, tv);
  auto command = [&](const std::vector<std::string>& argv, std::string* out) -> status {
    std::vector<const char*> args;
    std::vector<size_t> lens;
    for (auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    reply_guard r{static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()))};
    if (!r) {
      std::string why = ctx_->errstr;
      close();
      return status::failure("Redis at " + where + ": " + why);
    }
    if (r->type == REDIS_REPLY_ERROR) {
      std::string why{r->str, r->len};
      close();
      return status::failure("Redis at " + where + " refused " + argv[0] + ": " + why);
    }
    if (out != nullptr && r->type == REDIS_REPLY_STRING)
      *out = std::string{r->str, r->len};
    return status::ok();
  };
  if (!settings_.password.empty())
    if (auto st = command({"AUTH", settings_.password}, nullptr); !st)
      return st;
  if (settings_.db != 0)
    if (auto st = command({"SELECT", std::to_string(settings_.db)}, nullptr); !st)
      return st;
  if (auto st = command({"SCRIPT", "LOAD", claim_script}, &claim_sha_); !st)
    return st;
  return command({"SCRIPT", "LOAD", release_script}, &release_sha_);
}

status redis_client::run(const std::vector<std::string>& argv, redisReply** out) {
  *out = nullptr;
  if (ctx_ == nullptr)
    if (auto st = connect(); !st)
      return st;
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
    redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (r == nullptr) {
    std::string why = ctx_->errstr;
    close();
    return status::failure("Redis " + argv[0] + " failed: " + why);
  }
  *out = r;
  return status::ok();
}

status redis_client::eval(const std::string& sha, const std::string& script,
                          const std::vector<std::string>& args, redisReply** out) {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 3);
  argv.push_back("EVALSHA");
  argv.push_back(sha);
  argv.push_back("0");
  argv.insert(argv.end(), args.begin(), args.end());
  if (auto st = run(argv, out); !st)
    return st;
  if ((*out)->type == REDIS_REPLY_ERROR
      && std::string{(*out)->str, (*out)->len}.rfind("NOSCRIPT", 0) == 0) {
    // The server lost its script cache (restart, SCRIPT FLUSH): send the body.
    freeReplyObject(*out);
    argv[0] = "EVAL";
    argv[1] = script;
    return run(argv, out);
  }
  return status::ok();
}

status redis_client::known_voters(const std::vector<const std::string*>& hashes,
                                  std::vector<bool>& known) {
  known.assign(hashes.size(), false);
  if (hashes.empty())
    return status::ok();
  std::vector<std::string> argv;
  argv.reserve(hashes.size() + 2);
  argv.push_back("SMISMEMBER");
  argv.push_back(redis_keys::valid_voters);
  for (auto* h : hashes)
    argv.push_back(*h);
  redisReply* raw = nullptr;
  auto st = run(argv, &raw);
  reply_guard r{raw};
  if (!st)
    return st;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != hashes.size())
    return status::failure("Redis SMISMEMBER returned an unexpected reply"
                           + (r->type == REDIS_REPLY_ERROR ? ": " + std::string{r->str, r->len}
                                                           : std::string{}));
  for (size_t i = 0; i < hashes.size(); ++i)
    known[i] = r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer == 1;
  return status::ok();
}

status redis_client::claim(std::vector<ballot>& ballots) {
  std::vector<std::string> args;
  std::vector<ballot*> pending;
  args.push_back(std::to_string(settings_.claim_ttl.count()));
  for (auto& b : ballots) {
    if (b.status != verdict::pending)
      continue;
    pending.push_back(&b);
    args.push_back(b.content.voter_hash);
    args.push_back(b.content.fingerprint);
    args.push_back(b.redelivered ? "1" : "0");
  }
  if (pending.empty())
    return status::ok();
  if (ctx_ == nullptr)
    if (auto st = connect(); !st)
      return st;
  redisReply* raw = nullptr;
  auto st = eval(claim_sha_, claim_script, args, &raw);
  reply_guard r{raw};
  if (!st)
    return st;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != pending.size())
    return status::failure("Redis claim script returned an unexpected reply"
                           + (r->type == REDIS_REPLY_ERROR ? ": " + std::string{r->str, r->len}
                                                           : std::string{}));
  for (size_t i = 0; i < pending.size(); ++i) {
    auto n = r->element[i]->integer;
    auto& b = *pending[i];
    if (n == 0) {
      b.claim = claim_result::fresh;
      b.status = verdict::valid;
    } else if (n < 0) {
      b.claim = claim_result::resumed;
      b.status = verdict::valid;
    } else {
      b.claim = claim_result::taken;
      b.status = verdict::duplicate;
      b.duplicate_count = n;
      b.review_reason = "voter has already voted";
    }
  }
  return status::ok();
}

status redis_client::probe() {
  redisReply* raw = nullptr;
  auto st = run({"PING"}, &raw);
  reply_guard r{raw};
  if (!st)
    return st;
  if (r->type == REDIS_REPLY_ERROR) {
    std::string why{r->str, r->len};
    close();
    return status::failure("Redis PING refused: " + why);
  }
  return status::ok();
}

status redis_client::release(const std::vector<ballot>& ballots) {
  std::vector<std::string> args;
  for (auto& b : ballots)
    if (b.claim == claim_result::fresh) {
      args.push_back(b.content.voter_hash);
      args.push_back(b.content.fingerprint);
    }
  if (args.empty())
    return status::ok();
  if (ctx_ == nullptr)
    if (auto st = connect(); !st)
      return st;
  redisReply* raw = nullptr;
  auto st = eval(release_sha_, release_script, args, &raw);
  reply_guard r{raw};
  if (!st)
    return st;
  if (r->type == REDIS_REPLY_ERROR)
    return status::failure("Redis release script failed: " + std::string{r->str, r->len});
  return status::ok();
}

} // namespace vw
