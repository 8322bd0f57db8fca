#!/usr/bin/env python3
"""Helpers for tests/chaos/chaos.sh (standard library only).

Subcommands (all write/read files in a work directory given by --dir):
  gen       seeded workload: voters.txt (registered hashes), workload.jsonl
            (one published message per line, with its class), expected.json
  schedule  seeded fault schedule (schedule.txt: "<offset_s> <kind> <arg>")
  publish   publish workload.jsonl to a queue in timed chunks, persistent,
            with publisher confirms; holds an flock on <dir>/publish.lock
            while a chunk is in flight so the fault injector can close all
            RabbitMQ connections between chunks
  drain     consume a queue completely (no-ack) into a JSONL file
  check     verify the invariants from the audit table, Redis, the drained
            output queues and the workload; prints PASS/FAIL lines
  freeport  print a free TCP port on 127.0.0.1

A minimal AMQP 0-9-1 client is included (PLAIN auth, one channel).
"""

import argparse
import collections
import fcntl
import hashlib
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time

# ---------------------------------------------------------------- AMQP 0-9-1

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = b"\xce"


class AmqpError(Exception):
    pass


def _shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("B", len(b)) + b


def _longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


class Reader:
    def __init__(self, data):
        self.d, self.i = data, 0

    def take(self, n):
        v = self.d[self.i:self.i + n]
        self.i += n
        return v

    def octet(self):
        return self.take(1)[0]

    def short(self):
        return struct.unpack(">H", self.take(2))[0]

    def long(self):
        return struct.unpack(">I", self.take(4))[0]

    def longlong(self):
        return struct.unpack(">Q", self.take(8))[0]

    def shortstr(self):
        return self.take(self.octet()).decode("utf-8", "replace")

    def longstr(self):
        return self.take(self.long())


class Amqp:
    def __init__(self, host="127.0.0.1", port=5672, user="guest", password="guest",
                 vhost="/", timeout=30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.frame_max = 131072
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self._expect(0, 10, 10)  # connection.start
        props = b""  # empty client-properties table
        self._method(0, 10, 11, struct.pack(">I", len(props)) + props + _shortstr("PLAIN")
                     + _longstr(b"\x00" + user.encode() + b"\x00" + password.encode())
                     + _shortstr("en_US"))
        args = self._expect(0, 10, 30)  # connection.tune
        r = Reader(args)
        channel_max, frame_max, _hb = r.short(), r.long(), r.short()
        self.frame_max = frame_max or 131072
        self._method(0, 10, 31, struct.pack(">HIH", channel_max or 1, self.frame_max, 0))
        self._method(0, 10, 40, _shortstr(vhost) + _shortstr("") + b"\x00")
        self._expect(0, 10, 41)
        self._method(1, 20, 10, _shortstr(""))
        self._expect(1, 20, 11)
        self.confirms = False
        self.next_tag = 1
        self.acked_upto = 0       # every tag <= this is settled
        self.settled = set()      # settled tags above acked_upto
        self.nacked = 0
        self.deliveries = collections.deque()

    # -- framing
    def _send_frame(self, ftype, channel, payload):
        self.sock.sendall(struct.pack(">BHI", ftype, channel, len(payload)) + payload + FRAME_END)

    def _method(self, channel, cls, meth, args):
        self._send_frame(FRAME_METHOD, channel, struct.pack(">HH", cls, meth) + args)

    def _read_frame(self):
        while True:
            if len(self.buf) >= 7:
                ftype, channel, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    payload = self.buf[7:7 + size]
                    if self.buf[7 + size:8 + size] != FRAME_END:
                        raise AmqpError("bad frame end")
                    self.buf = self.buf[8 + size:]
                    return ftype, channel, payload
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise AmqpError("connection closed by the broker")
            self.buf += chunk

    def _read_method(self, until=None):
        """Reads frames until a method frame that is not handled internally
        (returned), or until `until()` holds after an asynchronous event
        (publisher confirm, delivery): then returns None."""
        while True:
            if until is not None and until():
                return None
            ftype, channel, payload = self._read_frame()
            if ftype == FRAME_HEARTBEAT:
                continue
            if ftype != FRAME_METHOD:
                raise AmqpError("unexpected frame type %d" % ftype)
            cls, meth = struct.unpack(">HH", payload[:4])
            args = payload[4:]
            if (cls, meth) == (10, 50):  # connection.close
                r = Reader(args)
                code, text = r.short(), r.shortstr()
                try:
                    self._method(0, 10, 51, b"")
                except OSError:
                    pass
                raise AmqpError("connection closed by the broker: %d %s" % (code, text))
            if (cls, meth) == (20, 40):  # channel.close
                r = Reader(args)
                code, text = r.short(), r.shortstr()
                try:
                    self._method(1, 20, 41, b"")
                except OSError:
                    pass
                raise AmqpError("channel closed by the broker: %d %s" % (code, text))
            if (cls, meth) in ((60, 80), (60, 120)):  # basic.ack / basic.nack
                r = Reader(args)
                tag, flags = r.longlong(), r.octet()
                if meth == 120:
                    self.nacked += 1
                self._settle(tag, bool(flags & 1))
                continue
            if (cls, meth) == (60, 60):  # basic.deliver
                r = Reader(args)
                r.shortstr()
                tag = r.longlong()
                redelivered = bool(r.octet() & 1)
                props, body = self._read_content()
                self.deliveries.append((tag, redelivered, props, body))
                continue
            return channel, cls, meth, args

    def _settle(self, tag, multiple):
        if multiple:
            if tag > self.acked_upto:
                self.acked_upto = tag
            self.settled = {t for t in self.settled if t > self.acked_upto}
        else:
            self.settled.add(tag)
        while self.acked_upto + 1 in self.settled:
            self.acked_upto += 1
            self.settled.discard(self.acked_upto)

    def _read_content(self):
        ftype, _, payload = self._read_frame()
        if ftype != FRAME_HEADER:
            raise AmqpError("expected a content header")
        r = Reader(payload)
        r.short(), r.short()
        size = r.longlong()
        flags = r.short()
        props = {}
        # property order: content-type, content-encoding, headers, delivery-mode,
        # priority, correlation-id, reply-to, expiration, message-id, timestamp,
        # type, user-id, app-id, cluster-id
        spec = [("content_type", "s"), ("content_encoding", "s"), ("headers", "t"),
                ("delivery_mode", "o"), ("priority", "o"), ("correlation_id", "s"),
                ("reply_to", "s"), ("expiration", "s"), ("message_id", "s"),
                ("timestamp", "q"), ("type", "s"), ("user_id", "s"), ("app_id", "s"),
                ("cluster_id", "s")]
        for bit, (name, kind) in zip(range(15, 1, -1), spec):
            if flags & (1 << bit):
                if kind == "s":
                    props[name] = r.shortstr()
                elif kind == "t":
                    r.longstr()
                elif kind == "o":
                    props[name] = r.octet()
                elif kind == "q":
                    props[name] = r.longlong()
        body = b""
        while len(body) < size:
            ftype, _, payload = self._read_frame()
            if ftype != FRAME_BODY:
                raise AmqpError("expected a body frame")
            body += payload
        return props, body

    def _expect(self, channel, cls, meth):
        ch, c, m, args = self._read_method()
        if (c, m) != (cls, meth):
            raise AmqpError("expected method %d.%d, got %d.%d" % (cls, meth, c, m))
        return args

    # -- operations
    def confirm_select(self):
        self._method(1, 85, 10, b"\x00")
        self._expect(1, 85, 11)
        self.confirms = True

    def queue_declare(self, queue, passive=False, durable=True):
        bits = (1 if passive else 0) | (2 if durable else 0)
        self._method(1, 50, 10, struct.pack(">H", 0) + _shortstr(queue) + bytes([bits])
                     + struct.pack(">I", 0))
        r = Reader(self._expect(1, 50, 11))
        r.shortstr()
        return r.long(), r.long()  # message count, consumer count

    def publish_frames(self, queue, body, message_id=None):
        flags = (1 << 15) | (1 << 12)
        props = _shortstr("application/json") + b"\x02"
        if message_id:
            flags |= 1 << 7
            props += _shortstr(message_id)
        out = bytearray()
        m = struct.pack(">HH", 60, 40) + struct.pack(">H", 0) + _shortstr("") + _shortstr(queue) + b"\x00"
        out += struct.pack(">BHI", FRAME_METHOD, 1, len(m)) + m + FRAME_END
        h = struct.pack(">HHQH", 60, 0, len(body), flags) + props
        out += struct.pack(">BHI", FRAME_HEADER, 1, len(h)) + h + FRAME_END
        step = self.frame_max - 8
        for i in range(0, len(body), step):
            part = body[i:i + step]
            out += struct.pack(">BHI", FRAME_BODY, 1, len(part)) + part + FRAME_END
        tag = self.next_tag
        self.next_tag += 1
        return bytes(out), tag

    def wait_confirms(self, upto, timeout=30.0):
        deadline = time.time() + timeout
        while self.acked_upto < upto:
            self.sock.settimeout(max(0.1, deadline - time.time()))
            if time.time() > deadline:
                raise AmqpError("publisher confirms timed out")
            self._read_method(until=lambda: self.acked_upto >= upto)

    def consume(self, queue, no_ack=True):
        self._method(1, 60, 10, struct.pack(">IHB", 0, 1000, 0))
        self._expect(1, 60, 11)
        self._method(1, 60, 20, struct.pack(">H", 0) + _shortstr(queue) + _shortstr("chaos-drain")
                     + bytes([2 if no_ack else 0]) + struct.pack(">I", 0))
        self._expect(1, 60, 21)

    def next_delivery(self, timeout):
        if self.deliveries:
            return self.deliveries.popleft()
        self.sock.settimeout(timeout)
        try:
            self._read_method(until=lambda: bool(self.deliveries))
        except socket.timeout:
            if not self.deliveries:
                return None
        return self.deliveries.popleft()

    def queue_delete(self, queue):
        self._method(1, 50, 40, struct.pack(">H", 0) + _shortstr(queue) + b"\x00")
        self._expect(1, 50, 41)

    def close(self):
        try:
            self._method(0, 10, 50, struct.pack(">H", 200) + _shortstr("bye") + struct.pack(">HH", 0, 0))
            self.sock.settimeout(2)
            while True:
                ftype, ch, payload = self._read_frame()
                if ftype == FRAME_METHOD and payload[:4] == struct.pack(">HH", 10, 51):
                    break
        except (OSError, AmqpError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- workload

def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def cmd_gen(a):
    rng = random.Random(a.seed)
    n = a.n
    registered = max(a.voters, int(n * 0.72) + 500)
    voters = [sha("chaos-voter-%d" % i) for i in range(registered)]
    with open(os.path.join(a.dir, "voters.txt"), "w") as f:
        for h in voters:
            f.write(h + "\n")
    # RESP for `redis-cli --pipe`: SADD valid_hashes, 1000 members per command
    with open(os.path.join(a.dir, "voters.resp"), "w") as f:
        for i in range(0, len(voters), 1000):
            part = ["SADD", "valid_hashes"] + voters[i:i + 1000]
            f.write("*%d\r\n" % len(part))
            for x in part:
                f.write("$%d\r\n%s\r\n" % (len(x), x))
    # Registered voters that only ever send malformed messages (they must
    # never get a row or a claim).
    malformed_only = voters[-200:]
    pool = voters[:-200]
    rng.shuffle(pool)
    next_first = 0
    used = []          # voters with a first vote so far (publication order)
    submissions = collections.Counter()
    msgs = []
    counts = collections.Counter()
    unknown_n = 0

    def base(h, seq, cand=None):
        return {"voter_hash": h, "candidate_id": cand if cand is not None else rng.randint(1, 12),
                "vote_timestamp": "2026-03-%02dT%02d:%02d:%02d.%03dZ" % (
                    rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
                    rng.randint(0, 59), rng.randint(0, 999)),
                "election_id": "chaos", "region_id": rng.randint(1, 40), "chaos_seq": seq}

    for seq in range(n):
        x = rng.random()
        if x < 0.70 or (x < 0.85 and not used):
            kind = "first"
        elif x < 0.85:
            kind = "resub"
        elif x < 0.95:
            kind = "unknown"
        else:
            kind = "malformed"
        if kind == "first" and next_first >= len(pool):
            kind = "resub"
        if kind == "first":
            h = pool[next_first]
            next_first += 1
            used.append(h)
            submissions[h] += 1
            body = json.dumps(base(h, seq))
            msgs.append({"seq": seq, "cls": "first", "h": h, "body": body})
        elif kind == "resub":
            # a third of the resubmissions follow their first vote closely (same
            # or neighbouring batch); the rest pick any earlier voter
            if rng.random() < 0.33:
                h = used[len(used) - 1 - rng.randint(0, min(60, len(used) - 1))]
            else:
                h = rng.choice(used)
            submissions[h] += 1
            body = json.dumps(base(h, seq))
            msgs.append({"seq": seq, "cls": "resub", "h": h, "body": body})
        elif kind == "unknown":
            # mostly distinct unknown voters, some of them submit twice
            if unknown_n > 10 and rng.random() < 0.1:
                j = rng.randint(0, unknown_n - 1)
            else:
                j = unknown_n
                unknown_n += 1
            h = sha("chaos-unknown-%d" % j)
            body = json.dumps(base(h, seq))
            msgs.append({"seq": seq, "cls": "unknown", "h": h, "body": body})
        else:
            hm = rng.choice(malformed_only)
            v = rng.randint(0, 11)
            b = base(hm, seq)
            if v == 0:
                body, why = "not json {\"voter_hash\": \"%s\"" % hm, "invalid_json"
            elif v == 1:
                del b["voter_hash"]
                body, why = json.dumps(b), "missing_field"
            elif v == 2:
                del b["candidate_id"]
                body, why = json.dumps(b), "missing_field"
            elif v == 3:
                b["voter_hash"] = hm[:63]
                body, why = json.dumps(b), "invalid_field"
            elif v == 4:
                b["voter_hash"] = "zz" + hm[2:]
                body, why = json.dumps(b), "invalid_field"
            elif v == 5:
                b["candidate_id"] = 0
                body, why = json.dumps(b), "invalid_field"
            elif v == 6:
                b["candidate_id"] = "7"
                body, why = json.dumps(b), "invalid_field"
            elif v == 7:
                b["vote_timestamp"] = "2023-02-29T00:00:00Z"
                body, why = json.dumps(b), "invalid_field"
            elif v == 8:
                body, why = json.dumps([b]), "not_an_object"
            elif v == 9:
                b["padding"] = "x" * 1100
                body, why = json.dumps(b), "oversized"
            elif v == 10:
                body, why = ('{"voter_hash":"%s","voter_hash":"%s","candidate_id":1,"chaos_seq":%d}'
                             % (hm, hm, seq)), "duplicate_field"
            else:
                body, why = "   ", "empty_message"
            msgs.append({"seq": seq, "cls": "malformed", "h": hm, "why": why, "body": body})
        counts[msgs[-1]["cls"]] += 1
    with open(os.path.join(a.dir, "workload.jsonl"), "w") as f:
        for m in msgs:
            f.write(json.dumps(m) + "\n")
    exp = {
        "n": n, "registered": registered, "counts": dict(counts),
        "valid_voters": len(submissions),
        "resubmissions": sum(c - 1 for c in submissions.values()),
        "voters_resubmitting": sum(1 for c in submissions.values() if c > 1),
        "max_submissions": max(submissions.values()) if submissions else 0,
        "unknown_distinct_voters": unknown_n,
        "malformed_by_type": dict(collections.Counter(m["why"] for m in msgs if m["cls"] == "malformed")),
    }
    with open(os.path.join(a.dir, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
    print("workload: %d messages: %d first votes, %d resubmissions (%d voters resubmit, up to %d "
          "submissions each), %d unknown-voter (%d distinct unknown voters), %d malformed %s; "
          "%d registered voters"
          % (n, counts["first"], counts["resub"], exp["voters_resubmitting"], exp["max_submissions"],
             counts["unknown"], unknown_n, counts["malformed"],
             json.dumps(exp["malformed_by_type"], sort_keys=True), registered))


def cmd_schedule(a):
    """Fault schedule and publish plan. Each fault gets a burst of messages
    published shortly before it, so that it lands while batches are in
    flight; the rest of the workload trickles in every 0.25 s."""
    rng = random.Random(a.seed * 7919 + 1)
    faults = (["kill"] * a.kills + ["redis_kill_clients"] * 3 + ["pg_terminate"] * 3
              + ["rabbit_close_all"] * 2 + ["redis_stop"] * 2)
    for extra in (a.extra or "").replace(",", " ").split():
        if extra != "pg_stop":
            sys.exit("schedule: unknown extra fault %r" % extra)
        faults += [extra] * 2
    rng.shuffle(faults)
    args, busy = [], []
    for kind in faults:
        if kind == "kill":
            delay = rng.uniform(0.5, 2.0)
            args.append("w%d:%.2f" % (rng.randint(1, 2), delay))
            busy.append(delay + 0.6)
        elif kind == "redis_stop":
            d = rng.uniform(3.0, 5.0)
            args.append("%.2f" % d)
            busy.append(d + 0.3)
        elif kind == "pg_stop":
            # longer than the worker's own deadline (POSTGRES_TIMEOUT_MS + 2 s)
            d = rng.uniform(4.5, 6.0)
            args.append("%.2f" % d)
            busy.append(d + 0.3)
        elif kind == "rabbit_close_all":
            args.append("-")
            busy.append(2.0)   # rabbitmqctl takes about 1.3 s to act
        else:
            args.append("-")
            busy.append(0.3)
    # Random moments within [start, end], each fault at least `min_gap` after
    # the previous one has finished.
    slack = a.end - a.start - sum(busy[:-1]) - a.min_gap * (len(faults) - 1)
    if slack < 0:
        sys.exit("schedule: window too short")
    cuts = sorted(rng.uniform(0, slack) for _ in faults)
    times, t, prev = [], a.start, 0.0
    for i, c in enumerate(cuts):
        t += c - prev
        prev = c
        times.append(t)
        t += busy[i] + a.min_gap
    n = a.n
    burst_total = int(n * 0.60)
    initial = int(n * 0.05)
    weights = [4 if k == "rabbit_close_all" else 1 for k in faults]
    plan = [(0.0, initial)]
    left = burst_total
    for i, (ft, kind) in enumerate(zip(times, faults)):
        size = burst_total * weights[i] // sum(weights) if i < len(faults) - 1 else left
        left -= size
        if kind == "rabbit_close_all":
            # rabbitmqctl acts ~0.75 s after it starts (at ft); the injector
            # holds publish.lock from ft+0.35 s until the close is done
            at = ft - 0.1
        else:
            at = ft - rng.uniform(0.0, 0.15)
        plan.append((max(0.0, at), size))
    trickle = n - initial - burst_total
    steps = int(a.end / 0.25)
    for k in range(steps):
        plan.append(((k + 1) * 0.25, trickle * (k + 1) // steps - trickle * k // steps))
    plan.sort()
    with open(os.path.join(a.dir, "schedule.txt"), "w") as f:
        for t, kind, arg in zip(times, faults, args):
            f.write("%.2f %s %s\n" % (t, kind, arg))
    with open(os.path.join(a.dir, "plan.txt"), "w") as f:
        for t, c in plan:
            if c > 0:
                f.write("%.3f %d\n" % (t, c))


# ---------------------------------------------------------------- publisher

def cmd_publish(a):
    with open(os.path.join(a.dir, "workload.jsonl")) as f:
        msgs = [json.loads(line) for line in f]
    plan = []
    with open(os.path.join(a.dir, "plan.txt")) as f:
        for line in f:
            t, c = line.split()
            plan.append((float(t), int(c)))
    chunks, due_at, pos = [], [], 0
    for t, c in plan:
        chunks.append(msgs[pos:pos + c])
        due_at.append(t)
        pos += c
    if pos != len(msgs):
        sys.exit("publish: the plan covers %d of %d messages" % (pos, len(msgs)))
    lock_path = os.path.join(a.dir, "publish.lock")
    progress = os.path.join(a.dir, "published.count")
    ambiguous = []
    published = 0
    t0 = time.time()
    with open(os.path.join(a.dir, "publisher.t0.tmp"), "w") as f:
        f.write("%.6f\n" % t0)
    os.replace(os.path.join(a.dir, "publisher.t0.tmp"), os.path.join(a.dir, "publisher.t0"))
    reconnects = 0
    for i, chunk in enumerate(chunks):
        due = t0 + due_at[i]
        if time.time() < due:
            time.sleep(due - time.time())
        pending = [(m["seq"], m["body"].encode()) for m in chunk]
        attempt = 0
        while pending:
            attempt += 1
            with open(lock_path, "a") as lk:
                fcntl.flock(lk, fcntl.LOCK_EX)
                conn = None
                tags = {}
                try:
                    conn = Amqp(timeout=30)
                    conn.confirm_select()
                    out = bytearray()
                    for seq, body in pending:
                        frames, tag = conn.publish_frames(a.queue, body)
                        tags[tag] = seq
                        out += frames
                        if len(out) > 256 * 1024:
                            conn.sock.sendall(out)
                            out = bytearray()
                    if out:
                        conn.sock.sendall(out)
                    conn.wait_confirms(conn.next_tag - 1)
                    if conn.nacked:
                        raise AmqpError("broker nacked %d messages" % conn.nacked)
                    published += len(pending)
                    pending = []
                    conn.close()
                except (OSError, AmqpError) as e:
                    # Confirmed ones are in; the rest may or may not be: publish
                    # them again and remember them as possibly doubled.
                    done = set()
                    if conn is not None:
                        done = {s for t, s in tags.items()
                                if t <= conn.acked_upto or t in conn.settled}
                        try:
                            conn.sock.close()
                        except OSError:
                            pass
                    unsure = [s for s, _ in pending if s not in done]
                    published += len(pending) - len(unsure)
                    if conn is not None and tags:
                        ambiguous.extend(unsure)
                    pending = [(s, b) for s, b in pending if s not in done]
                    reconnects += 1
                    print("publisher: chunk %d attempt %d failed (%s); republishing %d messages"
                          % (i, attempt, e, len(pending)), file=sys.stderr, flush=True)
                    if attempt > 20:
                        print("publisher: giving up", file=sys.stderr)
                        sys.exit(1)
                    time.sleep(0.5)
                finally:
                    fcntl.flock(lk, fcntl.LOCK_UN)
        with open(progress + ".tmp", "w") as p:
            p.write("%d %d\n" % (published, i + 1))
        os.replace(progress + ".tmp", progress)
    with open(os.path.join(a.dir, "ambiguous.json"), "w") as f:
        json.dump(sorted(set(ambiguous)), f)
    print("publisher: %d messages in %d chunks over %.1f s, %d reconnects, %d possibly doubled"
          % (published, len(chunks), time.time() - t0, reconnects, len(set(ambiguous))))


# ---------------------------------------------------------------- drain

def cmd_drain(a):
    conn = Amqp(timeout=30)
    count, _ = conn.queue_declare(a.queue, passive=True)
    conn.consume(a.queue, no_ack=True)
    got = 0
    with open(a.out, "w") as f:
        while True:
            d = conn.next_delivery(timeout=3.0 if got < count else 0.5)
            if d is None:
                break
            tag, redelivered, props, body = d
            f.write(json.dumps({"message_id": props.get("message_id"),
                                "delivery_mode": props.get("delivery_mode"),
                                "body": body.decode("utf-8", "replace")}) + "\n")
            got += 1
    left, _ = conn.queue_declare(a.queue, passive=True)
    conn.close()
    print("drained %d messages from %s (declared %d before, %d left)" % (got, a.queue, count, left))
    if left != 0 or got < count:
        sys.exit(1)


def cmd_declare(a):
    conn = Amqp(timeout=10)
    for q in a.queues:
        conn.queue_declare(q, durable=True)
    conn.close()


def cmd_delete(a):
    try:
        conn = Amqp(timeout=10)
    except (OSError, AmqpError) as e:
        print("cannot connect to delete queues: %s" % e, file=sys.stderr)
        sys.exit(1)
    for q in a.queues:
        try:
            conn.queue_delete(q)
        except (OSError, AmqpError) as e:
            print("delete %s: %s" % (q, e), file=sys.stderr)
            conn.close()
            conn = Amqp(timeout=10)
    conn.close()


def cmd_freeport(a):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


# ---------------------------------------------------------------- check

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def cmd_check(a):
    d = a.dir
    exp = json.load(open(os.path.join(d, "expected.json")))
    msgs = [json.loads(line) for line in open(os.path.join(d, "workload.jsonl"))]
    by_seq = {m["seq"]: m for m in msgs}
    amb_path = os.path.join(d, "ambiguous.json")
    ambiguous = set(json.load(open(amb_path))) if os.path.exists(amb_path) else set()
    amb_voters = {by_seq[s]["h"] for s in ambiguous}
    submissions = collections.defaultdict(set)   # voter -> seqs of well-formed registered votes
    for m in msgs:
        if m["cls"] in ("first", "resub"):
            submissions[m["h"]].add(m["seq"])
    wellformed = {m["seq"] for m in msgs if m["cls"] != "malformed"}
    malformed = {m["seq"] for m in msgs if m["cls"] == "malformed"}
    unknown = {m["seq"] for m in msgs if m["cls"] == "unknown"}
    malformed_only_voters = {m["h"] for m in msgs if m["cls"] == "malformed"} - set(submissions)

    results = []   # (name, ok, strict, text)

    def verdict(name, ok, text, strict=True):
        results.append((name, ok, strict, text))
        tag = "PASS" if ok else ("FAIL" if strict else "WARN")
        print("  [%s] %s: %s" % (tag, name, text))

    # ---- audit table
    env = dict(os.environ, PGPASSWORD="election")
    sql = ("COPY (SELECT voter_hash, status, COALESCE(metadata->>'chaos_seq',''), "
           "COALESCE(metadata->>'worker_id',''), COALESCE(metadata->>'resumed',''), "
           "COALESCE(metadata->>'redelivered','') FROM vote_audit) TO STDOUT")
    out = run(["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "election", "-d", a.db, "-c", sql], env=env)
    rows = [line.split("\t") for line in out.splitlines() if line]
    status_count = collections.Counter(r[1] for r in rows)
    rows_by_seq = collections.defaultdict(list)
    valid_rows = collections.defaultdict(list)
    bad_hash_rows = 0
    noseq_rows = 0
    for h, status, seq, worker, resumed, redelivered in rows:
        if not HEX64.match(h):
            bad_hash_rows += 1
        if seq == "":
            noseq_rows += 1
            continue
        rows_by_seq[int(seq)].append(status)
        if status == "valid":
            valid_rows[h].append(int(seq))
    resumed_rows = sum(1 for r in rows if r[4] == "true")
    print("audit rows: %d total %s; %d with resumed=true, %d written from redelivered messages"
          % (len(rows), json.dumps(dict(status_count), sort_keys=True), resumed_rows,
             sum(1 for r in rows if r[5] == "true")))

    # ---- output queues
    agg = [json.loads(line) for line in open(os.path.join(d, "aggregation.jsonl"))]
    rev = [json.loads(line) for line in open(os.path.join(d, "review.jsonl"))]
    agg_by_voter = collections.defaultdict(list)
    agg_bad = 0
    for m in agg:
        b = json.loads(m["body"])
        agg_by_voter[b.get("voter_hash")].append(b.get("chaos_seq"))
        if m["message_id"] != b.get("voter_hash") or b.get("status") != "valid" or m["delivery_mode"] != 2:
            agg_bad += 1
    rev_dup = collections.defaultdict(list)    # voter -> seqs reported duplicate
    rev_inv = collections.Counter()            # seq -> times reported invalid
    rev_other = 0
    for m in rev:
        b = json.loads(m["body"])
        if b.get("status") == "duplicate":
            rev_dup[b.get("voter_hash")].append(b.get("chaos_seq"))
        elif b.get("status") == "invalid":
            rev_inv[b.get("chaos_seq")] += 1
        else:
            rev_other += 1
    print("outputs: %d aggregation messages (%d voters), %d review messages (%d duplicate, %d invalid, %d other)"
          % (len(agg), len(agg_by_voter), len(rev), sum(len(v) for v in rev_dup.values()),
             sum(rev_inv.values()), rev_other))

    # ---- Redis
    rcli = ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "-n", str(a.redis_db)]
    voted = set(run(rcli + ["SMEMBERS", "voted_hashes"]).split())
    dup_keys = [k for k in run(rcli + ["--scan", "--pattern", "duplicate_count:*"]).split()]
    dup_counts = {}
    for i in range(0, len(dup_keys), 1000):
        part = dup_keys[i:i + 1000]
        vals = run(rcli + ["MGET"] + part).split("\n")
        for k, v in zip(part, vals):
            dup_counts[k.split(":", 1)[1]] = int(v) if v.strip() else 0
    claim_keys = len(run(rcli + ["--scan", "--pattern", "vote_claim:*"]).split())

    print("invariants:")
    # (b) one valid row per voter who submitted
    expected_voters = set(submissions)
    missing = [h for h in expected_voters if len(valid_rows.get(h, [])) == 0]
    multi = [h for h, s in valid_rows.items() if len(s) > 1]
    stray_valid = [h for h in valid_rows if h not in expected_voters]
    wrong_seq = [h for h, s in valid_rows.items() if h in expected_voters and not set(s) <= submissions[h]]
    verdict("b.one-valid-row-per-voter",
            not missing and not multi and not stray_valid and not wrong_seq,
            "expected %d voters with a counted vote; %d have one valid row, %d MISSING, %d with >1 "
            "valid rows, %d valid rows for voters who never sent a well-formed vote, %d valid rows "
            "carrying another message's seq"
            % (len(expected_voters), sum(1 for h in expected_voters if len(valid_rows.get(h, [])) == 1),
               len(missing), len(multi), len(stray_valid), len(wrong_seq)))
    if missing:
        print("      missing voters (first 10): %s" % " ".join(sorted(missing)[:10]))
        for h in sorted(missing)[:5]:
            print("        %s submissions seq=%s audit=%s review-dup seqs=%s dup_count=%s in voted_hashes=%s"
                  % (h[:16], sorted(submissions[h]),
                     {s: rows_by_seq.get(s) for s in sorted(submissions[h])},
                     sorted(rev_dup.get(h, [])), dup_counts.get(h), h in voted))
    # Redis agrees
    verdict("b2.voted_hashes-matches",
            voted == expected_voters,
            "voted_hashes has %d members, expected %d (%d missing, %d extra); %d vote_claim keys"
            % (len(voted), len(expected_voters), len(expected_voters - voted), len(voted - expected_voters),
               claim_keys))

    # (c) aggregation
    agg_voters = set(agg_by_voter)
    agg_missing = expected_voters - agg_voters
    agg_extra = agg_voters - expected_voters
    agg_repeats = sum(len(v) - 1 for v in agg_by_voter.values())
    agg_two_votes = [h for h, seqs in agg_by_voter.items() if len(set(seqs)) > 1]
    agg_not_audited = [h for h, seqs in agg_by_voter.items()
                       if h in valid_rows and set(seqs) != set(valid_rows[h])]
    verdict("c.aggregation-once-per-voter",
            not agg_missing and not agg_extra and not agg_two_votes and not agg_not_audited and agg_bad == 0,
            "%d distinct voters on the aggregation queue, expected %d (%d missing, %d extra); "
            "%d repeats of the same vote (allowed: same message_id); %d voters counted with two "
            "different votes; %d whose counted vote differs from the audited one; %d with wrong "
            "message_id/status/delivery_mode"
            % (len(agg_voters), len(expected_voters), len(agg_missing), len(agg_extra), agg_repeats,
               len(agg_two_votes), len(agg_not_audited), agg_bad))

    # (d) duplicates
    over = []
    valid_reported_dup = []
    exact_dups = 0
    for h, seqs in submissions.items():
        dseqs = set(rev_dup.get(h, []))
        if len(dseqs) > len(seqs) - 1:
            over.append(h)
        if set(valid_rows.get(h, [])) & dseqs and h not in amb_voters:
            valid_reported_dup.append(h)
        if len(dseqs) == len(seqs) - 1:
            exact_dups += 1
    strict_over = [h for h in over if h not in amb_voters]
    rev_dup_repeats = sum(len(v) - len(set(v)) for v in rev_dup.values())
    verdict("d.duplicates-never-exceed-resubmissions",
            not strict_over and not valid_reported_dup,
            "%d voters resubmitted (%d resubmissions); %d voters have exactly submissions-1 distinct "
            "messages reported duplicate; %d voters have MORE distinct messages reported duplicate "
            "than they resubmitted (%d of them touched by a possibly doubled publish); %d voters' "
            "counted vote was also reported as a duplicate; %d repeated duplicate reports of the "
            "same message (allowed after a crash)"
            % (exp["voters_resubmitting"], exp["resubmissions"], exact_dups, len(over),
               len(over) - len(strict_over), len(valid_reported_dup), rev_dup_repeats))
    if strict_over or valid_reported_dup:
        for h in (strict_over + valid_reported_dup)[:5]:
            print("        %s submissions=%s valid-row seqs=%s review-dup seqs=%s audit=%s"
                  % (h[:16], sorted(submissions[h]), valid_rows.get(h), sorted(rev_dup.get(h, [])),
                     {s: rows_by_seq.get(s) for s in sorted(submissions[h])}))
    missing_dups = [h for h, seqs in submissions.items()
                    if len(set(rev_dup.get(h, []))) < len(seqs) - 1]
    verdict("d2.every-resubmission-reported",
            not missing_dups,
            "%d voters have fewer distinct duplicate reports on votes.review than resubmissions"
            % len(missing_dups))
    excess = {}
    for h, seqs in submissions.items():
        c = dup_counts.get(h, 0)
        e = c - (len(seqs) - 1)
        if e != 0:
            excess[h] = e
    too_low = [h for h, e in excess.items() if e < 0]
    over_bound = [h for h, e in excess.items() if e > a.kills]
    verdict("d3.duplicate_count-bounded (soft)",
            not too_low and not over_bound,
            "duplicate_count:<h> exceeds submissions-1 for %d voters (max excess %d, total excess %d; "
            "documented: crashes and requeues repeat the increment); %d exceed submissions-1+%d "
            "(SIGKILLs); %d below submissions-1"
            % (sum(1 for e in excess.values() if e > 0), max([0] + list(excess.values())),
               sum(e for e in excess.values() if e > 0), len(over_bound), a.kills, len(too_low)),
            strict=False)

    # (e) audit rows per message; nothing for malformed input
    repeated = [s for s, st in rows_by_seq.items() if len(st) > 1 and s not in ambiguous]
    # a message the publisher had to send twice may be decided twice
    amb_extra = collections.Counter()
    for s in ambiguous:
        for st in rows_by_seq.get(s, [])[1:]:
            amb_extra[st] += 1
    unaudited = [s for s in wellformed if s not in rows_by_seq]
    malformed_rows = [s for s in rows_by_seq if s in malformed]
    mo_rows = sum(1 for r in rows if r[0] in malformed_only_voters)
    mo_voted = len(malformed_only_voters & voted)
    verdict("e.nothing-written-for-malformed",
            bad_hash_rows == 0 and not malformed_rows and mo_rows == 0 and mo_voted == 0 and noseq_rows == 0,
            "%d malformed messages; audit rows for them: %d; rows with a voter_hash that is not 64 "
            "hex: %d; rows without chaos_seq: %d; rows / voted_hashes members for the %d registered "
            "voters that sent only malformed messages: %d / %d"
            % (len(malformed), len(malformed_rows), bad_hash_rows, noseq_rows,
               len(malformed_only_voters), mo_rows, mo_voted))
    inv_rows = sum(1 for s in unknown if rows_by_seq.get(s) == ["invalid"])
    inv_review_missing = [s for s in unknown if rev_inv.get(s, 0) == 0]
    verdict("e2.one-audit-row-per-decided-message",
            not repeated and not unaudited
            and status_count.get("invalid", 0) == len(unknown) + amb_extra["invalid"]
            and inv_rows + len([s for s in unknown & ambiguous if len(rows_by_seq.get(s, [])) > 1]) == len(unknown)
            and status_count.get("duplicate", 0) == exp["resubmissions"] + amb_extra["duplicate"]
            + amb_extra["valid"],
            "%d well-formed messages, %d without an audit row, %d with more than one; invalid rows "
            "%d (expected %d unknown-voter messages, %d of them with exactly one invalid row); "
            "duplicate rows %d (expected %d resubmissions); %d extra rows for %d messages the "
            "publisher sent twice"
            % (len(wellformed), len(unaudited), len(repeated), status_count.get("invalid", 0),
               len(unknown), inv_rows, status_count.get("duplicate", 0), exp["resubmissions"],
               sum(amb_extra.values()), len(ambiguous)))
    if repeated or unaudited:
        for s in (repeated + unaudited)[:5]:
            print("        seq %d (%s, voter %s): audit %s" % (s, by_seq[s]["cls"], by_seq[s]["h"][:16],
                                                            rows_by_seq.get(s)))
    inv_repeats = sum(v - 1 for v in rev_inv.values() if v > 1)
    verdict("e3.unknown-voters-reviewed",
            not inv_review_missing and not (set(rev_inv) - unknown),
            "%d unknown-voter messages, %d never reached votes.review as invalid, %d review "
            "'invalid' messages for other messages; %d repeated invalid reports (allowed after a crash)"
            % (len(unknown), len(inv_review_missing), len(set(rev_inv) - unknown), inv_repeats))

    strict_fail = [r for r in results if r[2] and not r[1]]
    with open(os.path.join(d, "check.result"), "w") as f:
        for name, ok, strict, text in results:
            f.write("%s %s\n" % ("PASS" if ok else ("FAIL" if strict else "WARN"), name))
    sys.exit(1 if strict_fail else 0)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--dir", required=True)
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--voters", type=int, default=12000)
    g.add_argument("--seed", type=int, required=True)
    s = sub.add_parser("schedule")
    s.add_argument("--dir", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--kills", type=int, default=4)
    s.add_argument("--start", type=float, default=4)
    s.add_argument("--end", type=float, default=80)
    s.add_argument("--min-gap", type=float, default=1.5)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--extra", default="")
    pb = sub.add_parser("publish")
    pb.add_argument("--dir", required=True)
    pb.add_argument("--queue", required=True)
    dr = sub.add_parser("drain")
    dr.add_argument("--queue", required=True)
    dr.add_argument("--out", required=True)
    dc = sub.add_parser("declare")
    dc.add_argument("queues", nargs="+")
    de = sub.add_parser("delete")
    de.add_argument("queues", nargs="+")
    sub.add_parser("freeport")
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    c.add_argument("--db", required=True)
    c.add_argument("--redis-db", type=int, required=True)
    c.add_argument("--kills", type=int, required=True)
    a = p.parse_args()
    {"gen": cmd_gen, "schedule": cmd_schedule, "publish": cmd_publish, "drain": cmd_drain,
     "delete": cmd_delete, "declare": cmd_declare, "freeport": cmd_freeport, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    main()
