#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "infra/config.hpp"
#include "infra/ports.hpp"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

// PostgreSQL through libpq: one connection per object, owned by one actor.
// Every call is bounded by a client-side timeout, so a hung server (stopped,
// not closed) is noticed.
namespace vw {

struct pg_settings {
  std::string host;
  uint16_t port = 5432;
  std::string db;
  std::string user;
  std::string password;
  std::chrono::milliseconds timeout{10000};
  std::string application_name = "validation-worker";
  std::string sslmode = "prefer";
  std::string sslrootcert;

  static pg_settings from(const config& cfg);
};

class pg_connection {
public:
  explicit pg_connection(pg_settings s);
  ~pg_connection();
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  status connect();
  void close();
  bool connected() const { return conn_ != nullptr; }

  // Runs one parameterised statement; rows come back as text, NULL as nullopt.
  using row = std::vector<std::optional<std::string>>;
  status exec(const std::string& sql, const std::vector<std::string>& params,
              std::vector<row>* rows = nullptr);
  // The same, as a statement prepared once per connection under `name`: the
  // server parses and plans it once instead of for every batch.
  status exec_prepared(const char* name, const std::string& sql,
                       const std::vector<std::string>& params, std::vector<row>* rows = nullptr);

private:
  // Waits (bounded by the timeout) for the result of the query just sent.
  status finish(std::vector<row>* rows);

  pg_settings settings_;
  PGconn* conn_ = nullptr;
  std::set<std::string> prepared_; // statement names prepared on conn_
};

// What start-up needs to know about the schema.
struct schema_check {
  bool table_exists = false;
  bool unique_valid_index = false;
};
status check_schema(pg_connection& db, schema_check& out);

class pg_audit_log : public audit_log {
public:
  pg_audit_log(pg_settings s, std::string worker_id, std::vector<std::string> audited_statuses);

  status record(std::vector<ballot>& ballots, int64_t processed_time_us,
                const std::string& decided_by) override;
  status probe() override;

private:
  pg_connection db_;
  std::string worker_id_;
  std::vector<std::string> audited_;
};

} // namespace vw
