#define CAF_SUITE config
#include <caf/test/unit_test.hpp>

#include <cstdio>
#include <fstream>

#include "infra/config.hpp"

using namespace vw;

namespace {

env_lookup from(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    if (auto it = vars.find(name); it != vars.end())
      return it->second;
    return std::nullopt;
  };
}

std::string refusal(std::map<std::string, std::string> vars) {
  try {
    load_config(from(std::move(vars)));
  } catch (const config_error& e) {
    return e.what();
  }
  return "accepted";
}

} // namespace

CAF_TEST(defaults match the seed) {
  auto c = load_config(from({}));
  CAF_CHECK_EQUAL(c.rabbitmq_port, 5672);
  CAF_CHECK_EQUAL(c.prefetch_count, 10);
  CAF_CHECK_EQUAL(c.validation_queue, "votes.validation");
  CAF_CHECK_EQUAL(c.review_queue, "votes.review");
  CAF_CHECK_EQUAL(c.aggregation_queue, "votes.aggregation");
  CAF_CHECK_EQUAL(c.max_message_bytes, 1024u);
  CAF_CHECK_EQUAL(c.pii_fields.size(), 2u);
  CAF_CHECK(c.audits("valid") && c.audits("invalid") && c.audits("duplicate"));
  CAF_CHECK_EQUAL(c.batch_size, 10u); // never above the prefetch
}

CAF_TEST(bad values name the variable) {
  auto prefetch = refusal({{"PREFETCH_COUNT", "0"}});
  CAF_CHECK(prefetch.find("PREFETCH_COUNT") != std::string::npos);
  CAF_CHECK(refusal({{"RABBITMQ_PORT", "abc"}}).find("RABBITMQ_PORT=\"abc\"") != std::string::npos);
  CAF_CHECK(refusal({{"REDIS_PORT", "70000"}}).find("REDIS_PORT") != std::string::npos);
  CAF_CHECK(refusal({{"METRICS_PORT", "80x"}}).find("METRICS_PORT") != std::string::npos);
  CAF_CHECK(refusal({{"LOG_LEVEL", "loud"}}).find("LOG_LEVEL") != std::string::npos);
  CAF_CHECK(refusal({{"AUDIT_STATUSES", "valid,maybe"}}).find("AUDIT_STATUSES") != std::string::npos);
  CAF_CHECK(refusal({{"RABBITMQ_HOST", ""}}).find("RABBITMQ_HOST") != std::string::npos);
  CAF_CHECK_EQUAL(refusal({{"PREFETCH_COUNT", " 50 "}}), "accepted");
  CAF_CHECK(refusal({{"RABBITMQ_TLS", "maybe"}}).find("RABBITMQ_TLS") != std::string::npos);
  CAF_CHECK(refusal({{"RABBITMQ_TLS_CA_CERT", "/nonexistent/ca.pem"}}).find("cannot read")
            != std::string::npos);
  CAF_CHECK(refusal({{"RABBITMQ_TLS_CERT", "/etc/hostname"}}).find("go together")
            != std::string::npos);
  CAF_CHECK(refusal({{"POSTGRES_SSLMODE", "always"}}).find("POSTGRES_SSLMODE") != std::string::npos);
  CAF_CHECK_EQUAL(refusal({{"RABBITMQ_TLS", "yes"}, {"POSTGRES_SSLMODE", "verify-full"}}),
                  "accepted");
}

CAF_TEST(secrets are masked in the effective configuration) {
  auto c = load_config(from({{"POSTGRES_PASSWORD", "Sup3rS3cret"}, {"RABBITMQ_PASS", "rabbitpw"},
                             {"REDIS_PASSWORD", "redispw"}}));
  for (auto& line : c.describe()) {
    CAF_CHECK(line.find("Sup3rS3cret") == std::string::npos);
    CAF_CHECK(line.find("rabbitpw") == std::string::npos);
    CAF_CHECK(line.find("redispw") == std::string::npos);
  }
}

CAF_TEST(dotenv values are read and the real environment wins) {
  auto path = std::string{"/tmp/vw-config-test-"} + std::to_string(::getpid()) + ".env";
  {
    std::ofstream out{path};
    out << "# comment\nexport WORKER_ID=from-file\nPREFETCH_COUNT=\"250\"\n"
        << "METRICS_PORT=9100 # trailing comment\nVW_TEST_ONLY_VAR=file\n";
  }
  auto dotenv = read_dotenv(path);
  std::remove(path.c_str());
  CAF_CHECK_EQUAL(dotenv["WORKER_ID"], "from-file");
  CAF_CHECK_EQUAL(dotenv["PREFETCH_COUNT"], "250");
  CAF_CHECK_EQUAL(dotenv["METRICS_PORT"], "9100");
  ::setenv("VW_TEST_ONLY_VAR", "env", 1);
  auto env = process_env(dotenv);
  auto overridden = env("VW_TEST_ONLY_VAR");
  CAF_CHECK_EQUAL(overridden.value_or(""), "env");
  ::unsetenv("VW_TEST_ONLY_VAR");
  auto c = load_config(env);
  CAF_CHECK_EQUAL(c.prefetch_count, 250);
  CAF_CHECK_EQUAL(c.metrics_port, 9100);
}

CAF_TEST(node settings: which stages run here and which come from other nodes) {
  auto standalone = load_config(from({}));
  CAF_CHECK(standalone.node_ingress);
  CAF_CHECK_EQUAL(standalone.node_stages.size(), 4u);
  CAF_CHECK(standalone.remote_stages.empty());

  auto ingress = load_config(from({{"REMOTE_AUDITOR", "auditor-node:4700"}}));
  CAF_CHECK_EQUAL(ingress.remote_stages.at("auditor").host, "auditor-node");
  CAF_CHECK_EQUAL(ingress.remote_stages.at("auditor").port, 4700);
  CAF_CHECK(!ingress.runs_locally("auditor"));
  CAF_CHECK(ingress.runs_locally("validator"));
  auto fallback = load_config(from({{"REMOTE_AUDITOR", "a:1"}, {"REMOTE_FALLBACK", "local"}}));
  CAF_CHECK(fallback.runs_locally("auditor"));

  auto stage_node = load_config(from(
    {{"NODE_INGRESS", "false"}, {"NODE_STAGES", "auditor"}, {"NODE_LISTEN_PORT", "4700"}}));
  CAF_CHECK_EQUAL(stage_node.node_stages, std::vector<std::string>{"auditor"});
  CAF_CHECK(!stage_node.runs_locally("publisher"));

  CAF_CHECK(refusal({{"REMOTE_AUDITOR", "auditor-node"}}).find("REMOTE_AUDITOR") != std::string::npos);
  CAF_CHECK(refusal({{"REMOTE_DEDUP", "h:99999"}}).find("REMOTE_DEDUP") != std::string::npos);
  CAF_CHECK(refusal({{"NODE_STAGES", "auditor,cache"}}).find("NODE_STAGES") != std::string::npos);
  CAF_CHECK(refusal({{"NODE_STAGES", "validator,dedup,publisher"}}).find("REMOTE_AUDITOR")
            != std::string::npos);
  CAF_CHECK(refusal({{"REMOTE_AUDITOR", "a:1"}, {"NODE_STAGES", "auditor"}}).find("pick one")
            != std::string::npos);
  CAF_CHECK(refusal({{"NODE_INGRESS", "false"}, {"NODE_STAGES", "auditor"}})
              .find("NODE_LISTEN_PORT")
            != std::string::npos);
  CAF_CHECK(refusal({{"REMOTE_FALLBACK", "maybe"}}).find("REMOTE_FALLBACK") != std::string::npos);
}

CAF_TEST(node TLS is all or nothing) {
  CAF_CHECK(refusal({{"NODE_TLS", "required"}}).find("NODE_TLS_CERT") != std::string::npos);
  CAF_CHECK(refusal({{"NODE_TLS", "required"}, {"NODE_TLS_CERT", "/etc/hostname"},
                     {"NODE_TLS_KEY", "/etc/hostname"}})
              .find("NODE_TLS_CA")
            != std::string::npos);
  CAF_CHECK(refusal({{"NODE_TLS_CA", "/etc/hostname"}}).find("set NODE_TLS=required")
            != std::string::npos);
  CAF_CHECK(refusal({{"NODE_TLS", "yes"}}).find("NODE_TLS") != std::string::npos);
  CAF_CHECK(refusal({{"NODE_TLS_CERT", "/nonexistent.pem"}}).find("cannot read") != std::string::npos);
}
