#include "infra/amqp.hpp"

#include <algorithm>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "infra/vote_codec.hpp"

namespace vw {

namespace {

constexpr amqp_channel_t channel = 1;

timeval to_timeval(std::chrono::microseconds d) {
  if (d.count() < 0)
    d = std::chrono::microseconds{0};
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(d.count() % 1000000);
  return tv;
}

std::string bytes_to_string(amqp_bytes_t b) {
  return std::string{static_cast<const char*>(b.bytes), b.len};
}

amqp_bytes_t as_bytes(const std::string& s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

std::string describe_reply(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "missing RPC reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return "connection closed by broker: " + std::to_string(m->reply_code) + " "
               + bytes_to_string(m->reply_text);
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return "channel closed by broker: " + std::to_string(m->reply_code) + " "
               + bytes_to_string(m->reply_text);
      }
      return "unexpected broker method " + std::to_string(r.reply.id);
  }
  return "unknown RPC reply";
}

} // namespace

amqp_settings amqp_settings::from(const config& cfg) {
  amqp_settings s;
  s.host = cfg.rabbitmq_host;
  s.port = cfg.rabbitmq_port;
  s.user = cfg.rabbitmq_user;
  s.pass = cfg.rabbitmq_pass;
  s.vhost = cfg.rabbitmq_vhost;
  s.heartbeat_s = cfg.rabbitmq_heartbeat_s;
  s.timeout = std::chrono::milliseconds{cfg.stage_timeout_ms};
  s.tls = cfg.rabbitmq_tls;
  s.tls_ca_cert = cfg.rabbitmq_tls_ca_cert;
  s.tls_cert = cfg.rabbitmq_tls_cert;
  s.tls_key = cfg.rabbitmq_tls_key;
  s.tls_verify = cfg.rabbitmq_tls_verify;
  return s;
}

amqp_session::amqp_session(amqp_settings s) : settings_(std::move(s)) {}

amqp_session::~amqp_session() {
  close();
}

void amqp_session::mark_broken(std::string why) {
  broken_ = true;
  last_error_ = std::move(why);
}

status amqp_session::connect() {
  close();
  conn_ = amqp_new_connection();
  broken_ = false;
  auto* sock = settings_.tls ? amqp_ssl_socket_new(conn_) : amqp_tcp_socket_new(conn_);
  if (sock == nullptr) {
    mark_broken(settings_.tls ? "cannot create a TLS socket" : "cannot create a TCP socket");
    return status::failure(last_error_);
  }
  if (settings_.tls) {
    static const std::string system_bundle = "/etc/ssl/certs/ca-certificates.crt";
    const auto& ca = settings_.tls_ca_cert.empty() ? system_bundle : settings_.tls_ca_cert;
    if (settings_.tls_verify && amqp_ssl_socket_set_cacert(sock, ca.c_str()) != AMQP_STATUS_OK) {
      mark_broken("cannot load the CA certificates in " + ca + " (RABBITMQ_TLS_CA_CERT)");
      return status::failure(last_error_);
    }
    if (!settings_.tls_cert.empty()
        && amqp_ssl_socket_set_key(sock, settings_.tls_cert.c_str(), settings_.tls_key.c_str())
             != AMQP_STATUS_OK) {
      mark_broken("cannot load the client certificate " + settings_.tls_cert
                  + " with its key (RABBITMQ_TLS_CERT, RABBITMQ_TLS_KEY)");
      return status::failure(last_error_);
    }
    amqp_ssl_socket_set_verify_peer(sock, settings_.tls_verify ? 1 : 0);
    amqp_ssl_socket_set_verify_hostname(sock, settings_.tls_verify ? 1 : 0);
  }
  auto tv = to_timeval(settings_.timeout);
  amqp_set_handshake_timeout(conn_, &tv);
  amqp_set_rpc_timeout(conn_, &tv);
  auto where = settings_.host + ":" + std::to_string(settings_.port);
  if (int rc = amqp_socket_open_noblock(sock, settings_.host.c_str(), settings_.port, &tv);
      rc != AMQP_STATUS_OK) {
    mark_broken("cannot connect to RabbitMQ at " + where + (settings_.tls ? " over TLS: " : ": ")
                + amqp_error_string2(rc));
    return status::failure(last_error_);
  }
  auto login = amqp_login(conn_, settings_.vhost.c_str(), 0, 131072, settings_.heartbeat_s,
                          AMQP_SASL_METHOD_PLAIN, settings_.user.c_str(), settings_.pass.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    mark_broken("RabbitMQ login at " + where + " as " + settings_.user
                + " failed: " + describe_reply(login));
    return status::failure(last_error_);
  }
  amqp_channel_open(conn_, channel);
  return check_rpc("channel.open");
}

void amqp_session::close() {
  if (conn_ == nullptr)
    return;
  if (!broken_) {
    amqp_channel_close(conn_, channel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(conn_);
  conn_ = nullptr;
}

status amqp_session::check_rpc(const char* what) {
  auto r = amqp_get_rpc_reply(conn_);
  if (r.reply_type == AMQP_RESPONSE_NORMAL)
    return status::ok();
  auto text = std::string{what} + ": " + describe_reply(r);
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    // The connection survives a channel error: acknowledge it and reopen.
    amqp_channel_close_ok_t ok{};
    amqp_send_method(conn_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    last_error_ = text;
    if (auto st = reopen_channel(); !st)
      return st;
    return status::failure(text);
  }
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION
      && r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    amqp_connection_close_ok_t ok{};
    amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  }
  mark_broken(text);
  return status::failure(text);
}

status amqp_session::reopen_channel() {
  amqp_channel_open(conn_, channel);
  auto r = amqp_get_rpc_reply(conn_);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    mark_broken("channel.open: " + describe_reply(r));
    return status::failure(last_error_);
  }
  return status::ok();
}

status amqp_session::ensure_queue(const std::string& name) {
  amqp_queue_declare(conn_, channel, as_bytes(name), 1, 0, 0, 0, amqp_empty_table);
  if (check_rpc("queue.declare (passive)"))
    return status::ok();
  if (!connected())
    return status::failure(last_error_);
  // Not there yet: declare it durable. Another worker may win the race with
  // other arguments; a passive declare then confirms it exists.
  amqp_queue_declare(conn_, channel, as_bytes(name), 0, 1, 0, 0, amqp_empty_table);
  if (check_rpc("queue.declare"))
    return status::ok();
  if (!connected())
    return status::failure(last_error_);
  amqp_queue_declare(conn_, channel, as_bytes(name), 1, 0, 0, 0, amqp_empty_table);
  return check_rpc("queue.declare (passive)");
}

std::optional<uint64_t> amqp_session::queue_depth(const std::string& name) {
  auto* ok = amqp_queue_declare(conn_, channel, as_bytes(name), 1, 0, 0, 0, amqp_empty_table);
  if (!check_rpc("queue.declare (passive)") || ok == nullptr)
    return std::nullopt;
  return ok->message_count;
}

amqp_delivery_source::amqp_delivery_source(amqp_settings s, std::string queue, uint16_t prefetch)
  : session_(std::move(s)), queue_(std::move(queue)), prefetch_(prefetch) {}

status amqp_delivery_source::open() {
  if (auto st = session_.connect(); !st)
    return st;
  if (auto st = session_.ensure_queue(queue_); !st)
    return st;
  amqp_basic_qos(session_.raw(), channel, 0, prefetch_, 0);
  if (auto st = session_.check_rpc("basic.qos"); !st)
    return st;
  auto* ok = amqp_basic_consume(session_.raw(), channel, as_bytes(queue_), amqp_empty_bytes, 0, 0,
                                0, amqp_empty_table);
  if (auto st = session_.check_rpc("basic.consume"); !st)
    return st;
  consumer_tag_ = bytes_to_string(ok->consumer_tag);
  return status::ok();
}

std::optional<delivery> amqp_delivery_source::next(std::chrono::microseconds timeout) {
  if (!session_.connected())
    return std::nullopt;
  auto* conn = session_.raw();
  if (amqp_frames_enqueued(conn) == 0 && amqp_data_in_buffer(conn) == 0) {
    // Block in poll(2) ourselves: rabbitmq-c's own timeout handling was seen
    // returning at once, turning an idle wait into a busy loop.
    pollfd pfd{amqp_get_sockfd(conn), POLLIN, 0};
    auto ms = static_cast<int>((timeout.count() + 999) / 1000);
    // Over TLS, decrypted data may wait inside OpenSSL where poll cannot see
    // it: let rabbitmq-c look once without waiting.
    if (::poll(&pfd, 1, ms) == 0 && !session_.tls())
      return std::nullopt;
  }
  amqp_maybe_release_buffers(conn);
  amqp_envelope_t env;
  auto tv = to_timeval(session_.tls() ? std::chrono::microseconds{0}
                                       : std::max(timeout, std::chrono::microseconds{1000}));
  auto r = amqp_consume_message(conn, &env, &tv, 0);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    delivery d;
    d.tag = env.delivery_tag;
    d.redelivered = env.redelivered != 0;
    d.body = bytes_to_string(env.message.body);
    const auto& props = env.message.properties;
    if (props._flags & AMQP_BASIC_TIMESTAMP_FLAG)
      d.amqp_timestamp_s = static_cast<int64_t>(props.timestamp);
    if (props._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
      d.message_id = bytes_to_string(props.message_id);
    amqp_destroy_envelope(&env);
    return d;
  }
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
    return std::nullopt;
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
      && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
    // A frame other than a delivery: read it and see whether it ends us.
    amqp_frame_t frame;
    timeval zero{0, 0};
    if (amqp_simple_wait_frame_noblock(conn, &frame, &zero) != AMQP_STATUS_OK)
      return std::nullopt;
    if (frame.frame_type != AMQP_FRAME_METHOD)
      return std::nullopt;
    switch (frame.payload.method.id) {
      case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_ok_t ok{};
        amqp_send_method(conn, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
        session_.mark_broken("channel closed by broker: " + std::to_string(m->reply_code) + " "
                             + bytes_to_string(m->reply_text));
        break;
      }
      case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_ok_t ok{};
        amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
        session_.mark_broken("connection closed by broker: " + std::to_string(m->reply_code)
                             + " " + bytes_to_string(m->reply_text));
        break;
      }
      case AMQP_BASIC_CANCEL_METHOD:
        session_.mark_broken("the broker cancelled the consumer (queue deleted?)");
        break;
      default:
        break;
    }
    return std::nullopt;
  }
  session_.mark_broken("RabbitMQ connection lost: " + describe_reply(r));
  return std::nullopt;
}

status amqp_delivery_source::frame_status(int rc, const char* what) {
  if (rc == AMQP_STATUS_OK)
    return status::ok();
  session_.mark_broken(std::string{what} + " failed: " + amqp_error_string2(rc));
  return status::failure(session_.last_error());
}

status amqp_delivery_source::ack(uint64_t tag, bool multiple) {
  if (!session_.connected())
    return status::failure("no RabbitMQ connection");
  return frame_status(amqp_basic_ack(session_.raw(), channel, tag, multiple ? 1 : 0), "basic.ack");
}

status amqp_delivery_source::requeue(uint64_t tag) {
  if (!session_.connected())
    return status::failure("no RabbitMQ connection");
  return frame_status(amqp_basic_nack(session_.raw(), channel, tag, 0, 1), "basic.nack");
}

status amqp_delivery_source::reject(uint64_t tag) {
  if (!session_.connected())
    return status::failure("no RabbitMQ connection");
  return frame_status(amqp_basic_reject(session_.raw(), channel, tag, 0), "basic.reject");
}

status amqp_delivery_source::cancel() {
  if (!session_.connected() || consumer_tag_.empty())
    return status::ok();
  amqp_basic_cancel(session_.raw(), channel, as_bytes(consumer_tag_));
  consumer_tag_.clear();
  return session_.check_rpc("basic.cancel");
}

void amqp_delivery_source::close() {
  session_.close();
}

amqp_vote_sink::amqp_vote_sink(amqp_settings s, std::string aggregation_queue,
                               std::string review_queue, std::string worker_id)
  : session_([&] {
      // No heartbeats: an idle publisher must not be dropped between batches.
      s.heartbeat_s = 0;
      return std::move(s);
    }()),
    aggregation_queue_(std::move(aggregation_queue)),
    review_queue_(std::move(review_queue)),
    worker_id_(std::move(worker_id)) {}

status amqp_vote_sink::open() {
  // Batches sent on a session that is gone will never be confirmed, and the
  // new channel's numbering would pass them (confirm_window::open_channel):
  // they are reported lost first, whoever asks for the new channel.
  if (!outstanding_.empty())
    return lose("the publishing connection closed while votes awaited confirms");
  if (auto st = session_.connect(); !st)
    return st;
  for (auto* q : {&aggregation_queue_, &review_queue_})
    if (auto st = session_.ensure_queue(*q); !st)
      return st;
  amqp_confirm_select(session_.raw(), channel);
  if (auto st = session_.check_rpc("confirm.select"); !st)
    return st;
  // The new channel numbers its confirms from 1; nothing before it will be confirmed.
  confirms_.open_channel();
  outstanding_.clear();
  return status::ok();
}

status amqp_vote_sink::lose(std::string why) {
  session_.mark_broken(std::move(why));
  session_.close();
  confirms_.forget();
  outstanding_.clear();
  return status::failure(session_.last_error());
}

status amqp_vote_sink::send(const std::vector<ballot>& ballots, int64_t processed_time_us,
                            const std::string& decided_by, uint64_t& last) {
  last = 0;
  const auto& worker_id = decided_by.empty() ? worker_id_ : decided_by;
  if (!session_.connected())
    if (auto st = open(); !st) {
      session_.close();
      return st;
    }
  auto first = confirms_.next();
  amqp_bytes_t json_type = amqp_cstring_bytes("application/json");
  // rabbitmq-c writes each frame with its own send(2); corking lets the
  // kernel put the whole batch into as few segments as it can.
  int fd = amqp_get_sockfd(session_.raw());
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
  for (auto& b : ballots) {
    if (b.status == verdict::pending)
      continue;
    auto body = encode_output(b, worker_id, processed_time_us);
    amqp_basic_properties_t props;
    std::memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG
                   | AMQP_BASIC_TIMESTAMP_FLAG;
    props.content_type = json_type;
    props.delivery_mode = 2;
    props.timestamp = static_cast<uint64_t>(processed_time_us / 1000000);
    const auto& queue = b.status == verdict::valid ? aggregation_queue_ : review_queue_;
    if (b.status == verdict::valid) {
      // Lets the aggregator drop a vote it already counted.
      props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
      props.message_id = as_bytes(b.content.voter_hash);
    }
    int rc = amqp_basic_publish(session_.raw(), channel, amqp_empty_bytes, as_bytes(queue), 1, 0,
                                &props, as_bytes(body));
    if (rc != AMQP_STATUS_OK)
      return lose(std::string{"basic.publish failed: "} + amqp_error_string2(rc));
    confirms_.sent();
  }
  int off = 0;
  setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
  if (confirms_.next() == first)
    return status::ok();
  last = confirms_.next() - 1;
  outstanding_.push_back({last, std::chrono::steady_clock::now()});
  return status::ok();
}

status amqp_vote_sink::probe() {
  if (session_.connected())
    return status::ok();
  auto st = open();
  if (!st)
    session_.close();
  return st;
}

status amqp_vote_sink::await_confirms(std::chrono::microseconds timeout, uint64_t& confirmed) {
  confirmed = confirms_.through();
  if (outstanding_.empty())
    return status::ok();
  if (!session_.connected())
    return lose(session_.last_error());
  auto now = std::chrono::steady_clock::now();
  if (now - outstanding_.front().at > session_.timeout())
    return lose("no publisher confirm from RabbitMQ within "
                + std::to_string(session_.timeout().count()) + " ms");
  auto* conn = session_.raw();
  if (amqp_frames_enqueued(conn) == 0 && amqp_data_in_buffer(conn) == 0) {
    // poll(2) ourselves, as the consumer does: rabbitmq-c's timed wait was seen spinning.
    amqp_maybe_release_buffers(conn);
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(
      outstanding_.front().at + session_.timeout() - now);
    auto wait = std::max(std::min(timeout, left), std::chrono::microseconds{0});
    pollfd pfd{amqp_get_sockfd(conn), POLLIN, 0};
    // Over TLS, decrypted data may wait inside OpenSSL: look once anyway.
    if (::poll(&pfd, 1, static_cast<int>((wait.count() + 999) / 1000)) == 0 && !session_.tls())
      return status::ok();
  }
  bool returned = false;
  for (;;) {
    amqp_frame_t frame;
    timeval zero{0, 0};
    int rc = amqp_simple_wait_frame_noblock(conn, &frame, &zero);
    if (rc == AMQP_STATUS_TIMEOUT)
      break;
    if (rc != AMQP_STATUS_OK)
      return lose(std::string{"waiting for publisher confirms: "} + amqp_error_string2(rc));
    if (frame.frame_type != AMQP_FRAME_METHOD)
      continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        auto* m = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        confirms_.confirm(m->delivery_tag, m->multiple != 0);
        break;
      }
      case AMQP_BASIC_NACK_METHOD:
        return lose("RabbitMQ refused (nacked) a published vote");
      case AMQP_BASIC_RETURN_METHOD: {
        // Unroutable: the output queue is gone. Read the returned content.
        amqp_message_t msg;
        amqp_read_message(conn, frame.channel, &msg, 0);
        amqp_destroy_message(&msg);
        returned = true;
        break;
      }
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD:
        return lose("RabbitMQ closed the publishing channel");
      default:
        break;
    }
  }
  if (returned)
    // The queue vanished; re-declare it on the next publish.
    return lose("an output queue does not exist; the vote was returned unroutable");
  while (!outstanding_.empty() && outstanding_.front().last <= confirms_.through())
    outstanding_.pop_front();
  confirmed = confirms_.through();
  return status::ok();
}

amqp_queue_probe::amqp_queue_probe(amqp_settings s, std::string queue)
  : session_([&] {
      s.heartbeat_s = 0;
      return std::move(s);
    }()),
    queue_(std::move(queue)) {}

std::optional<uint64_t> amqp_queue_probe::depth() {
  // Declaring (passively first) avoids a spurious failure when the monitor
  // starts before the consumer declared the queue.
  if (!session_.connected() && (!session_.connect() || !session_.ensure_queue(queue_)))
    return std::nullopt;
  auto d = session_.queue_depth(queue_);
  if (!session_.connected())
    session_.close();
  return d;
}

} // namespace vw
