#include "infra/config.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

namespace vw {

namespace {

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

[[noreturn]] void refuse(const std::string& name, const std::string& value,
                         const std::string& rule) {
  throw config_error("invalid configuration: " + name + "=\"" + value + "\": " + rule);
}

class reader {
public:
  explicit reader(const env_lookup& env) : env_(env) {}

  void text(const char* name, std::string& out, bool may_be_empty = false) {
    if (auto v = env_(name)) {
      if (v->empty() && !may_be_empty)
        refuse(name, *v, "must not be empty");
      out = *v;
    }
  }

  template <class Int>
  void integer(const char* name, Int& out, long long min, long long max) {
    auto v = env_(name);
    if (!v)
      return;
    auto s = trim(*v);
    long long parsed = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), parsed);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || parsed < min
        || parsed > max)
      refuse(name, *v,
             "must be an integer between " + std::to_string(min) + " and " + std::to_string(max));
    out = static_cast<Int>(parsed);
  }

  void list(const char* name, std::vector<std::string>& out) {
    auto v = env_(name);
    if (!v)
      return;
    out.clear();
    size_t pos = 0;
    while (pos <= v->size()) {
      auto comma = v->find(',', pos);
      if (comma == std::string::npos)
        comma = v->size();
      auto item = trim(v->substr(pos, comma - pos));
      if (!item.empty())
        out.push_back(item);
      pos = comma + 1;
    }
  }

  void flag(const char* name, bool& out) {
    auto v = env_(name);
    if (!v)
      return;
    auto s = trim(*v);
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "true" || s == "1" || s == "yes" || s == "on")
      out = true;
    else if (s == "false" || s == "0" || s == "no" || s == "off")
      out = false;
    else
      refuse(name, *v, "must be true or false");
  }

  // A file the worker must be able to read at start-up.
  void file(const char* name, std::string& out) {
    text(name, out, true);
    if (!out.empty() && access(out.c_str(), R_OK) != 0)
      refuse(name, out, "cannot read this file");
  }

  void choice(const char* name, std::string& out, std::initializer_list<const char*> allowed) {
    auto v = env_(name);
    if (!v)
      return;
    auto s = trim(*v);
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string options;
    for (auto* a : allowed) {
      if (s == a) {
        out = s;
        return;
      }
      options += options.empty() ? a : std::string{"|"} + a;
    }
    refuse(name, *v, "must be one of " + options);
  }

private:
  const env_lookup& env_;
};

std::string default_worker_id() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0')
    return std::string{"worker-"} + host;
  return "worker-1";
}

// REMOTE_VALIDATOR for "validator".
std::string remote_variable(const std::string& stage) {
  auto name = "REMOTE_" + stage;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char ch) { return std::toupper(ch); });
  return name;
}

node_endpoint endpoint_of(const std::string& name, const std::string& value) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size())
    refuse(name, value, "must be host:port, the NODE_LISTEN_PORT of the node serving the stage");
  node_endpoint e;
  e.host = value.substr(0, colon);
  if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') // [::1]:4700
    e.host = e.host.substr(1, e.host.size() - 2);
  auto port = value.substr(colon + 1);
  int parsed = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), parsed);
  if (ec != std::errc{} || end != port.data() + port.size() || parsed < 1 || parsed > 65535)
    refuse(name, value, "the port must be an integer between 1 and 65535");
  e.port = static_cast<uint16_t>(parsed);
  return e;
}

// NODE_* and REMOTE_*: which stages run here, which come from other nodes.
void read_node_settings(reader& r, config& c) {
  r.flag("NODE_INGRESS", c.node_ingress);
  r.integer("NODE_LISTEN_PORT", c.node_listen_port, 0, 65535);
  r.integer("NODE_LINK_TIMEOUT_MS", c.node_link_timeout_ms, 500, 600000);
  r.text("NODE_LISTEN_HOST", c.node_listen_host);
  for (auto& stage : stage_names) {
    auto name = remote_variable(stage);
    std::string value;
    r.text(name.c_str(), value, true);
    if (!value.empty())
      c.remote_stages[stage] = endpoint_of(name, trim(value));
  }
  std::string fallback = "none";
  r.choice("REMOTE_FALLBACK", fallback, {"none", "local"});
  c.remote_fallback_local = fallback == "local";
  std::vector<std::string> stages;
  r.list("NODE_STAGES", stages);
  for (auto& s : stages) {
    if (std::find(stage_names.begin(), stage_names.end(), s) == stage_names.end())
      refuse("NODE_STAGES", s, "each entry must be one of validator|dedup|auditor|publisher");
    if (c.remote_stages.count(s))
      refuse("NODE_STAGES", s, "this stage is also configured as remote (REMOTE_...); pick one");
  }
  if (stages.empty()) // default: every stage that is not remote
    for (auto& s : stage_names)
      if (!c.remote_stages.count(s))
        stages.push_back(s);
  c.node_stages = stages;
  if (c.node_ingress) {
    for (auto& s : stage_names)
      if (std::find(stages.begin(), stages.end(), s) == stages.end() && !c.remote_stages.count(s))
        refuse("NODE_STAGES", "", "an ingress node needs every stage, locally or remote: " + s
                                    + " is neither (add it or set " + remote_variable(s) + ")");
  } else {
    if (c.node_listen_port == 0)
      refuse("NODE_LISTEN_PORT", "0",
             "a node with NODE_INGRESS=false only serves stages to other nodes: set a port");
    if (stages.empty())
      refuse("NODE_STAGES", "", "a node with NODE_INGRESS=false must run at least one stage");
    if (!c.remote_stages.empty())
      refuse("NODE_INGRESS", "false", "REMOTE_* stages are used by ingress nodes only");
    if (c.remote_fallback_local)
      refuse("REMOTE_FALLBACK", "local", "only an ingress node with REMOTE_* stages falls back");
  }
  std::string tls = "off";
  r.choice("NODE_TLS", tls, {"off", "required"});
  c.node_tls = tls == "required";
  r.file("NODE_TLS_CERT", c.node_tls_cert);
  r.file("NODE_TLS_KEY", c.node_tls_key);
  r.file("NODE_TLS_CA", c.node_tls_ca);
  r.text("NODE_TLS_KEY_PASSPHRASE", c.node_tls_key_passphrase, true);
  bool any_file = !c.node_tls_cert.empty() || !c.node_tls_key.empty() || !c.node_tls_ca.empty();
  if (c.node_tls) {
    if (c.node_tls_cert.empty())
      refuse("NODE_TLS_CERT", "", "NODE_TLS=required needs this node's certificate");
    if (c.node_tls_key.empty())
      refuse("NODE_TLS_KEY", "", "NODE_TLS=required needs this node's private key");
    if (c.node_tls_ca.empty())
      refuse("NODE_TLS_CA", "", "NODE_TLS=required needs the CA that signs every node's certificate");
  } else if (any_file) {
    refuse("NODE_TLS", "off", "node certificates are configured but not used: set NODE_TLS=required");
  }
}

} // namespace

bool config::runs_locally(const std::string& stage) const {
  if (std::find(node_stages.begin(), node_stages.end(), stage) != node_stages.end())
    return true;
  return remote_fallback_local && remote_stages.count(stage) > 0;
}

bool config::audits(const std::string& status) const {
  return std::find(audit_statuses.begin(), audit_statuses.end(), status) != audit_statuses.end();
}

std::vector<std::string> config::describe() const {
  auto secret = [](const std::string& s) { return s.empty() ? std::string{} : std::string{"****"}; };
  auto join = [](const std::vector<std::string>& xs) {
    std::string out;
    for (auto& x : xs)
      out += (out.empty() ? "" : ",") + x;
    return out;
  };
  std::vector<std::string> out{
    "WORKER_ID=" + worker_id,
    "RABBITMQ_HOST=" + rabbitmq_host,
    "RABBITMQ_PORT=" + std::to_string(rabbitmq_port),
    "RABBITMQ_USER=" + rabbitmq_user,
    "RABBITMQ_PASS=" + secret(rabbitmq_pass),
    "RABBITMQ_VHOST=" + rabbitmq_vhost,
    "VALIDATION_QUEUE=" + validation_queue,
    "REVIEW_QUEUE=" + review_queue,
    "AGGREGATION_QUEUE=" + aggregation_queue,
    "PREFETCH_COUNT=" + std::to_string(prefetch_count),
    std::string{"RABBITMQ_TLS="} + (rabbitmq_tls ? "true" : "false"),
    "REDIS_HOST=" + redis_host,
    "REDIS_PORT=" + std::to_string(redis_port),
    "REDIS_DB=" + std::to_string(redis_db),
    "REDIS_PASSWORD=" + secret(redis_password),
    "POSTGRES_HOST=" + postgres_host,
    "POSTGRES_PORT=" + std::to_string(postgres_port),
    "POSTGRES_DB=" + postgres_db,
    "POSTGRES_USER=" + postgres_user,
    "POSTGRES_PASSWORD=" + secret(postgres_password),
    "POSTGRES_SSLMODE=" + postgres_sslmode,
    "METRICS_BIND=" + metrics_bind,
    "METRICS_PORT=" + std::to_string(metrics_port),
    "BATCH_SIZE=" + std::to_string(batch_size),
    "BATCH_MAX_WAIT_MS=" + std::to_string(batch_max_wait_ms),
    "MAX_MESSAGE_BYTES=" + std::to_string(max_message_bytes),
    "PII_FIELDS=" + join(pii_fields),
    "AUDIT_STATUSES=" + join(audit_statuses),
    "SHUTDOWN_TIMEOUT=" + std::to_string(shutdown_timeout_s),
    "STAGE_TIMEOUT_MS=" + std::to_string(stage_timeout_ms),
    "LOG_LEVEL=" + log_level,
    "LOG_FORMAT=" + log_format,
  };
  out.push_back(std::string{"NODE_INGRESS="} + (node_ingress ? "true" : "false"));
  out.push_back("NODE_STAGES=" + join(node_stages));
  if (node_listen_port != 0)
    out.push_back("NODE_LISTEN=" + node_listen_host + ":" + std::to_string(node_listen_port));
  for (auto& [stage, at] : remote_stages)
    out.push_back(remote_variable(stage) + "=" + at.text());
  if (!remote_stages.empty())
    out.push_back(std::string{"REMOTE_FALLBACK="} + (remote_fallback_local ? "local" : "none"));
  if (node_listen_port != 0 || !remote_stages.empty())
    out.push_back("NODE_LINK_TIMEOUT_MS=" + std::to_string(node_link_timeout_ms));
  out.push_back(std::string{"NODE_TLS="} + (node_tls ? "required" : "off"));
  return out;
}

std::map<std::string, std::string> read_dotenv(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in{path};
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#')
      continue;
    if (line.rfind("export ", 0) == 0)
      line = trim(line.substr(7));
    auto eq = line.find('=');
    if (eq == std::string::npos)
      continue;
    auto name = trim(line.substr(0, eq));
    auto value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'')
        && value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    else if (auto hash = value.find(" #"); hash != std::string::npos)
      value = trim(value.substr(0, hash));
    out[name] = value;
  }
  return out;
}

env_lookup process_env(std::map<std::string, std::string> dotenv) {
  return [dotenv = std::move(dotenv)](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str()))
      return std::string{v};
    if (auto i = dotenv.find(name); i != dotenv.end())
      return i->second;
    return std::nullopt;
  };
}

config load_config(const env_lookup& env) {
  config c;
  c.worker_id = default_worker_id();
  reader r{env};
  r.text("RABBITMQ_HOST", c.rabbitmq_host);
  r.integer("RABBITMQ_PORT", c.rabbitmq_port, 1, 65535);
  r.text("RABBITMQ_USER", c.rabbitmq_user);
  r.text("RABBITMQ_PASS", c.rabbitmq_pass, true);
  r.text("RABBITMQ_VHOST", c.rabbitmq_vhost);
  r.text("VALIDATION_QUEUE", c.validation_queue);
  r.text("REVIEW_QUEUE", c.review_queue);
  r.text("AGGREGATION_QUEUE", c.aggregation_queue);
  r.integer("PREFETCH_COUNT", c.prefetch_count, 1, 65535);
  r.integer("RABBITMQ_HEARTBEAT", c.rabbitmq_heartbeat_s, 0, 3600);
  r.flag("RABBITMQ_TLS", c.rabbitmq_tls);
  r.file("RABBITMQ_TLS_CA_CERT", c.rabbitmq_tls_ca_cert);
  r.file("RABBITMQ_TLS_CERT", c.rabbitmq_tls_cert);
  r.file("RABBITMQ_TLS_KEY", c.rabbitmq_tls_key);
  r.flag("RABBITMQ_TLS_VERIFY", c.rabbitmq_tls_verify);
  if (c.rabbitmq_tls_cert.empty() != c.rabbitmq_tls_key.empty())
    refuse("RABBITMQ_TLS_KEY", c.rabbitmq_tls_key,
           "RABBITMQ_TLS_CERT and RABBITMQ_TLS_KEY go together");
  r.text("REDIS_HOST", c.redis_host);
  r.integer("REDIS_PORT", c.redis_port, 1, 65535);
  r.integer("REDIS_DB", c.redis_db, 0, 1023);
  r.text("REDIS_PASSWORD", c.redis_password, true);
  r.integer("REDIS_TIMEOUT_MS", c.redis_timeout_ms, 10, 600000);
  r.integer("CLAIM_TTL_S", c.claim_ttl_s, 0, 31536000);
  r.text("POSTGRES_HOST", c.postgres_host);
  r.integer("POSTGRES_PORT", c.postgres_port, 1, 65535);
  r.text("POSTGRES_DB", c.postgres_db);
  r.text("POSTGRES_USER", c.postgres_user);
  r.text("POSTGRES_PASSWORD", c.postgres_password, true);
  r.integer("POSTGRES_TIMEOUT_MS", c.postgres_timeout_ms, 100, 600000);
  r.choice("POSTGRES_SSLMODE", c.postgres_sslmode,
           {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"});
  r.file("POSTGRES_SSLROOTCERT", c.postgres_sslrootcert);
  r.text("WORKER_ID", c.worker_id);
  r.text("METRICS_BIND", c.metrics_bind);
  r.integer("METRICS_PORT", c.metrics_port, 1, 65535);
  r.integer("BATCH_SIZE", c.batch_size, 1, 10000);
  r.integer("BATCH_MAX_WAIT_MS", c.batch_max_wait_ms, 0, 10000);
  r.integer("MAX_MESSAGE_BYTES", c.max_message_bytes, 64, 1 << 20);
  std::vector<std::string> extra_pii;
  r.list("PII_FIELDS", extra_pii);
  for (auto& f : extra_pii)
    if (std::find(c.pii_fields.begin(), c.pii_fields.end(), f) == c.pii_fields.end())
      c.pii_fields.push_back(f);
  r.list("AUDIT_STATUSES", c.audit_statuses);
  for (auto& s : c.audit_statuses)
    if (s != "valid" && s != "invalid" && s != "duplicate")
      refuse("AUDIT_STATUSES", s, "each entry must be one of valid|invalid|duplicate");
  r.integer("SHUTDOWN_TIMEOUT", c.shutdown_timeout_s, 1, 3600);
  r.integer("STAGE_TIMEOUT_MS", c.stage_timeout_ms, 100, 600000);
  r.integer("BACKOFF_INITIAL_MS", c.backoff_initial_ms, 1, 600000);
  r.integer("BACKOFF_MAX_MS", c.backoff_max_ms, 1, 3600000);
  r.integer("RESTART_MAX", c.restart_max, 0, 1000);
  r.integer("RESTART_WINDOW_S", c.restart_window_s, 1, 86400);
  r.integer("QUEUE_POLL_INTERVAL_MS", c.queue_poll_interval_ms, 100, 600000);
  r.choice("LOG_LEVEL", c.log_level, {"trace", "debug", "info", "warn", "error"});
  r.choice("LOG_FORMAT", c.log_format, {"text", "json"});
  read_node_settings(r, c);
  if (c.backoff_max_ms < c.backoff_initial_ms)
    refuse("BACKOFF_MAX_MS", std::to_string(c.backoff_max_ms),
           "must not be below BACKOFF_INITIAL_MS");
  // A batch can never hold more deliveries than the broker lets us have unacked.
  c.batch_size = std::min<size_t>(c.batch_size, c.prefetch_count);
  return c;
}

} // namespace vw
