#include "infra/postgres.hpp"

#include <algorithm>
#include <poll.h>
#include <thread>

#include <libpq-fe.h>

#include "infra/vote_codec.hpp"

namespace vw {

namespace {

// One statement per batch: insert every row, skipping rows a redelivery of the
// same message already wrote, and report the valid votes the database did not
// take, with the fingerprint of the message whose counted vote it holds.
constexpr const char* record_sql = R"sql(
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS t(
    voter_hash text, candidate_id int, status text, vote_timestamp timestamptz,
    metadata jsonb, redelivered boolean, fingerprint text)
), ins AS (
  INSERT INTO vote_audit (voter_hash, candidate_id, status, vote_timestamp,
                          processed_timestamp, metadata)
  SELECT i.voter_hash, i.candidate_id, i.status, i.vote_timestamp, $2::timestamptz, i.metadata
  FROM input i
  WHERE NOT (i.redelivered AND EXISTS (
    SELECT 1 FROM vote_audit a
    WHERE a.voter_hash = i.voter_hash AND a.status = i.status
      AND a.metadata->>'fingerprint' = i.fingerprint))
  ON CONFLICT DO NOTHING
  RETURNING voter_hash, status
)
SELECT i.voter_hash, 'f',
       (SELECT a.metadata->>'fingerprint' FROM vote_audit a
        WHERE a.voter_hash = i.voter_hash AND a.status = 'valid' LIMIT 1)
FROM input i
WHERE i.status = 'valid'
  AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.voter_hash = i.voter_hash AND ins.status = 'valid')
)sql";

constexpr const char* insert_sql = R"sql(
INSERT INTO vote_audit (voter_hash, candidate_id, status, vote_timestamp,
                        processed_timestamp, metadata)
SELECT t.voter_hash, t.candidate_id, t.status, t.vote_timestamp, $2::timestamptz, t.metadata
FROM jsonb_to_recordset($1::jsonb) AS t(
  voter_hash text, candidate_id int, status text, vote_timestamp timestamptz, metadata jsonb)
)sql";

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r'))
    s.pop_back();
  return s;
}

} // namespace

pg_settings pg_settings::from(const config& cfg) {
  pg_settings s;
  s.host = cfg.postgres_host;
  s.port = cfg.postgres_port;
  s.db = cfg.postgres_db;
  s.user = cfg.postgres_user;
  s.password = cfg.postgres_password;
  s.timeout = std::chrono::milliseconds{cfg.postgres_timeout_ms};
  s.application_name = "validation-worker " + cfg.worker_id;
  s.sslmode = cfg.postgres_sslmode;
  s.sslrootcert = cfg.postgres_sslrootcert;
  return s;
}

pg_connection::pg_connection(pg_settings s) : settings_(std::move(s)) {}

pg_connection::~pg_connection() {
  close();
}

void pg_connection::close() {
  prepared_.clear();
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

status pg_connection::connect() {
  close();
  auto port = std::to_string(settings_.port);
  auto connect_timeout = std::to_string(std::max<long long>(1, settings_.timeout.count() / 1000));
  auto options = "-c statement_timeout=" + std::to_string(settings_.timeout.count());
  std::vector<const char*> keys = {"host",     "port",            "dbname",  "user",
                                   "password", "connect_timeout", "options", "application_name",
                                   "sslmode"};
  std::vector<const char*> values = {settings_.host.c_str(),     port.c_str(),
                                     settings_.db.c_str(),       settings_.user.c_str(),
                                     settings_.password.c_str(), connect_timeout.c_str(),
                                     options.c_str(),            settings_.application_name.c_str(),
                                     settings_.sslmode.c_str()};
  if (!settings_.sslrootcert.empty()) {
    keys.push_back("sslrootcert");
    values.push_back(settings_.sslrootcert.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectdbParams(keys.data(), values.data(), 0);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    std::string why = conn_ != nullptr ? one_line(PQerrorMessage(conn_)) : "out of memory";
    close();
    return status::failure("cannot connect to PostgreSQL database " + settings_.db + " at "
                           + settings_.host + ":" + port + " as " + settings_.user + ": "
                           + why);
  }
  return status::ok();
}

status pg_connection::exec(const std::string& sql, const std::vector<std::string>& params,
                           std::vector<row>* rows) {
  if (conn_ == nullptr)
    if (auto st = connect(); !st)
      return st;
  std::vector<const char*> values;
  values.reserve(params.size());
  for (auto& p : params)
    values.push_back(p.c_str());
  if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                        values.data(), nullptr, nullptr, 0)
      == 0) {
    auto why = one_line(PQerrorMessage(conn_));
    close();
    return status::failure("PostgreSQL: " + why);
  }
  return finish(rows);
}

status pg_connection::exec_prepared(const char* name, const std::string& sql,
                                    const std::vector<std::string>& params,
                                    std::vector<row>* rows) {
  if (conn_ == nullptr)
    if (auto st = connect(); !st)
      return st;
  if (prepared_.count(name) == 0) {
    if (PQsendPrepare(conn_, name, sql.c_str(), static_cast<int>(params.size()), nullptr) == 0) {
      auto why = one_line(PQerrorMessage(conn_));
      close();
      return status::failure("PostgreSQL: " + why);
    }
    if (auto st = finish(nullptr); !st)
      return st;
    prepared_.insert(name);
  }
  std::vector<const char*> values;
  values.reserve(params.size());
  for (auto& p : params)
    values.push_back(p.c_str());
  if (PQsendQueryPrepared(conn_, name, static_cast<int>(params.size()), values.data(), nullptr,
                          nullptr, 0)
      == 0) {
    auto why = one_line(PQerrorMessage(conn_));
    close();
    return status::failure("PostgreSQL: " + why);
  }
  return finish(rows);
}

status pg_connection::finish(std::vector<row>* rows) {
  // Wait for the whole result with a deadline of our own: statement_timeout
  // cannot help when the server process itself is hung.
  auto deadline = std::chrono::steady_clock::now() + settings_.timeout + std::chrono::seconds{2};
  while (PQisBusy(conn_) != 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      // Ask the server to cancel the abandoned statement, so a backend that
      // wakes up later does not commit rows its redelivery writes again. On a
      // thread of its own: the cancel request may hang as long as the server.
      if (PGcancel* cancel = PQgetCancel(conn_))
        std::thread{[cancel] {
          char why[256];
          PQcancel(cancel, why, sizeof(why));
          PQfreeCancel(cancel);
        }}.detach();
      close();
      return status::failure("PostgreSQL did not answer within "
                             + std::to_string(settings_.timeout.count() / 1000 + 2) + " s");
    }
    pollfd pfd{PQsocket(conn_), POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) < 0 || PQconsumeInput(conn_) == 0) {
      auto why = one_line(PQerrorMessage(conn_));
      close();
      return status::failure("PostgreSQL connection lost: " + why);
    }
  }
  status result = status::ok();
  while (PGresult* res = PQgetResult(conn_)) {
    auto st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      if (!result.failed())
        result = status::failure("PostgreSQL: " + one_line(PQresultErrorMessage(res)));
    } else if (rows != nullptr) {
      int n = PQntuples(res), m = PQnfields(res);
      for (int i = 0; i < n; ++i) {
        row r;
        for (int j = 0; j < m; ++j)
          r.push_back(PQgetisnull(res, i, j) ? std::nullopt
                                             : std::optional<std::string>{PQgetvalue(res, i, j)});
        rows->push_back(std::move(r));
      }
    }
    PQclear(res);
  }
  if (PQstatus(conn_) != CONNECTION_OK)
    close();
  return result;
}

status check_schema(pg_connection& db, schema_check& out) {
  std::vector<pg_connection::row> rows;
  auto st = db.exec(
    "SELECT to_regclass('vote_audit') IS NOT NULL, EXISTS ("
    " SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
    " JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]"
    " WHERE x.indrelid = to_regclass('vote_audit') AND x.indisunique AND x.indnatts = 1"
    " AND a.attname = 'voter_hash' AND pg_get_expr(x.indpred, x.indrelid) LIKE '%valid%')",
    {}, &rows);
  if (!st)
    return st;
  out.table_exists = !rows.empty() && rows[0][0] == std::optional<std::string>{"t"};
  out.unique_valid_index = !rows.empty() && rows[0][1] == std::optional<std::string>{"t"};
  return status::ok();
}

pg_audit_log::pg_audit_log(pg_settings s, std::string worker_id,
                           std::vector<std::string> audited_statuses)
  : db_(std::move(s)), worker_id_(std::move(worker_id)), audited_(std::move(audited_statuses)) {}

status pg_audit_log::probe() {
  return db_.exec("SELECT 1", {});
}

namespace {

// One element of the jsonb_to_recordset input.
void append_row(std::string& out, const ballot& b, verdict status, const std::string& worker_id) {
  out += out.size() > 1 ? ",{" : "{";
  out += "\"voter_hash\":\"";
  out += b.content.voter_hash; // 64 hex characters, checked by the decoder
  out += "\",\"candidate_id\":";
  out += std::to_string(b.content.candidate_id);
  out += ",\"status\":\"";
  out += to_string(status);
  out += "\",\"vote_timestamp\":\"";
  out += format_iso8601_us(b.content.vote_time_us);
  out += "\",\"redelivered\":";
  out += b.redelivered ? "true" : "false";
  out += ",\"fingerprint\":\"";
  out += b.content.fingerprint;
  out += "\",\"metadata\":";
  out += encode_audit_metadata(b, worker_id);
  out += '}';
}

} // namespace

status pg_audit_log::record(std::vector<ballot>& ballots, int64_t processed_time_us,
                            const std::string& decided_by) {
  // Rows name the ingress worker that decided (another node's, for a remote auditor).
  const auto& worker_id = decided_by.empty() ? worker_id_ : decided_by;
  auto audited = [&](verdict v) {
    return std::find(audited_.begin(), audited_.end(), to_string(v)) != audited_.end();
  };
  std::string rows = "[";
  rows.reserve(ballots.size() * 400);
  for (auto& b : ballots)
    if (b.status != verdict::pending && audited(b.status))
      append_row(rows, b, b.status, worker_id);
  rows += ']';
  if (rows.size() == 2)
    return status::ok();
  auto processed = format_iso8601_us(processed_time_us);
  std::vector<pg_connection::row> valid_rows;
  if (auto st = db_.exec_prepared("vw_record_audit", record_sql, {rows, processed}, &valid_rows);
      !st)
    return st;
  // A valid vote the database did not take, and whose counted row belongs to
  // another message, is a second vote: the audit log outranks Redis.
  std::string demoted = "[";
  for (auto& r : valid_rows) {
    if (r.size() < 3 || r[1] == std::optional<std::string>{"t"})
      continue;
    if (!r[2])
      // The unique index refused the row but the counted row is not visible
      // to this statement: another transaction committed it meanwhile (a
      // batch of this message still finishing elsewhere, or a second vote).
      // Which one is unknown until it is visible: retry rather than guess.
      return status::failure("the counted vote of voter " + r[0].value_or("?").substr(0, 12)
                             + "... was committed concurrently; retrying the batch");
    for (auto& b : ballots) {
      if (b.status != verdict::valid || b.content.voter_hash != r[0])
        continue;
      if (r[2] && *r[2] == b.content.fingerprint)
        continue;
      b.status = verdict::duplicate;
      b.claim = claim_result::taken;
      b.duplicate_count = std::max<int64_t>(b.duplicate_count, 1);
      b.review_reason = "voter already has a counted vote in the audit log";
      if (audited(verdict::duplicate))
        append_row(demoted, b, verdict::duplicate, worker_id);
    }
  }
  demoted += ']';
  if (demoted.size() > 2)
    return db_.exec(insert_sql, {demoted, processed});
  return status::ok();
}

} // namespace vw
