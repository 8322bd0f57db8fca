#!/usr/bin/env python3
"""Deterministic reproduction of a lost vote found by tests/chaos/chaos.sh.

  tests/chaos/repro_claim_order.py [--owner-first] [worker-binary]
                                   (default build/validation-worker)

--owner-first publishes B before A: the control case, which passes.

Situation (what the chaos test produced with CHAOS_SEED=404 after
`rabbitmqctl close_all_connections`): message B of voter h made the claim
(SADD voted_hashes h -> 1, vote_claim:h = fingerprint(B)); its batch did not
finish (worker killed, or the publish was not confirmed), so B is redelivered.
Message A of the same voter (another submission, decided duplicate or still
unacked) is redelivered too, ahead of B, and both land in one batch:
[A(redelivered), B(redelivered)].

G3 says B resumes its own claim (valid, audit row, votes.aggregation) and A is
a duplicate. The claim script in infra/redis.cpp decides A first (duplicate)
and marks the voter `decided`, so B is turned into a duplicate as well: no
valid row, nothing on votes.aggregation, yet h stays in voted_hashes, so the
voter can never be counted.

The claim state of B is written directly into Redis (exactly what the claim
script writes), then A and B are published and bounced once (consumed
without ack, connection closed) so the broker redelivers them with the
redelivered flag, in order. Exit 0 if the worker behaves as G3 says, 1 if
the bug shows, 2 on a set-up problem. Uses Redis DB 13, database
vw_chaos_repro and queues chaos.repro.<pid>.*; cleans up after itself.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chaoslib import Amqp  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ARGS = [x for x in sys.argv[1:] if x != "--owner-first"]
OWNER_FIRST = "--owner-first" in sys.argv[1:]
BIN = ARGS[0] if ARGS else os.path.join(REPO, "build", "validation-worker")
RDB = "13"
DB = "vw_chaos_repro"
PID = os.getpid()
Q = {k: "chaos.repro.%d.%s" % (PID, k) for k in ("validation", "review", "aggregation")}
ENV = dict(os.environ, PGPASSWORD="election")


def fnv1a64(body):
    h = 1469598103934665603
    for c in body.encode():
        h ^= c
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def redis(*args):
    return subprocess.run(["redis-cli", "-n", RDB] + list(args), check=True,
                          capture_output=True, text=True).stdout.strip()


def psql(db, sql):
    return subprocess.run(["psql", "-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-U", "election",
                           "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                          capture_output=True, text=True, env=ENV).stdout.strip()


def main():
    h = hashlib.sha256(b"chaos-repro-voter").hexdigest()
    body_a = json.dumps({"voter_hash": h, "candidate_id": 3, "chaos_seq": 1})
    body_b = json.dumps({"voter_hash": h, "candidate_id": 4, "chaos_seq": 2})
    work = tempfile.mkdtemp(prefix="vw-repro.")
    worker = None
    try:
        redis("FLUSHDB")
        redis("SADD", "valid_hashes", h)
        # B's claim, as the claim script records it (SADD + SET EX)
        redis("SADD", "voted_hashes", h)
        redis("SET", "vote_claim:" + h, fnv1a64(body_b), "EX", "86400")
        psql("election", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)
        psql("election", "CREATE DATABASE %s" % DB)
        subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "election", "-d", DB,
                        "-v", "ON_ERROR_STOP=1", "-f", os.path.join(REPO, "sql", "schema.sql")],
                       check=True, capture_output=True, env=ENV)
        c = Amqp()
        c.confirm_select()
        for q in Q.values():
            c.queue_declare(q)
        out = b""
        for body in ((body_b, body_a) if OWNER_FIRST else (body_a, body_b)):
            frames, _ = c.publish_frames(Q["validation"], body.encode())
            out += frames
        c.sock.sendall(out)
        c.wait_confirms(c.next_tag - 1)
        c.close()
        # bounce both: deliver without ack, close -> requeued, redelivered=true
        c = Amqp()
        c.consume(Q["validation"], no_ack=False)
        got = [c.next_delivery(5), c.next_delivery(5)]
        if None in got:
            print("setup: could not bounce the two messages")
            return 2
        c.close()
        time.sleep(0.3)

        env = {"PATH": "/usr/bin:/bin", "HOME": work, "RABBITMQ_HOST": "127.0.0.1",
               "VALIDATION_QUEUE": Q["validation"], "REVIEW_QUEUE": Q["review"],
               "AGGREGATION_QUEUE": Q["aggregation"], "REDIS_HOST": "127.0.0.1",
               "REDIS_DB": RDB, "POSTGRES_HOST": "127.0.0.1", "POSTGRES_DB": DB,
               "WORKER_ID": "repro", "METRICS_BIND": "127.0.0.1", "METRICS_PORT": "18991",
               "PREFETCH_COUNT": "10", "BATCH_SIZE": "10", "BATCH_MAX_WAIT_MS": "200",
               "SHUTDOWN_TIMEOUT": "5"}
        log = open(os.path.join(work, "worker.log"), "w")
        worker = subprocess.Popen([BIN], cwd=work, env=env, stdout=log, stderr=log)
        deadline = time.time() + 20
        rows = []
        while time.time() < deadline:
            rows = psql(DB, "SELECT metadata->>'chaos_seq', status, metadata->>'redelivered' "
                            "FROM vote_audit ORDER BY id").splitlines()
            if len(rows) >= 2:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        worker.terminate()
        worker.wait(15)
        c = Amqp()
        n_agg, _ = c.queue_declare(Q["aggregation"], passive=True)
        n_rev, _ = c.queue_declare(Q["review"], passive=True)
        c.close()
        voted = redis("SISMEMBER", "voted_hashes", h)
        print("A (seq 1) and B (seq 2, owner of the claim) redelivered in one batch, %s first"
              % ("B" if OWNER_FIRST else "A"))
        print("audit rows (seq|status|redelivered): %s" % (rows or "none"))
        print("votes.aggregation: %d message(s); votes.review: %d message(s); "
              "voter in voted_hashes: %s; duplicate_count: %s"
              % (n_agg, n_rev, voted, redis("GET", "duplicate_count:" + h) or "-"))
        ok = n_agg == 1 and "2|valid|true" in rows
        print("RESULT: %s" % ("OK: B resumed its claim and was counted" if ok else
                              "BUG: B owns the claim but was decided duplicate; the voter is "
                              "claimed in Redis but has no counted vote"))
        return 0 if ok else 1
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        try:
            c = Amqp()
            for q in Q.values():
                c.queue_delete(q)
            c.close()
        except Exception:
            pass
        subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "election", "-d", "election",
                        "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB],
                       capture_output=True, env=ENV)
        redis("FLUSHDB")
        if sys.exc_info()[0] is None and "ok" in locals() and ok:
            subprocess.run(["rm", "-rf", work])
        else:
            print("worker log: %s/worker.log" % work)


if __name__ == "__main__":
    sys.exit(main())
