-- Audit trail of every decided vote (DESIGN.md §1). Idempotent: safe to apply
-- on every start of the dev stack, docker-compose and the tests.
CREATE TABLE IF NOT EXISTS vote_audit (
    id                  BIGSERIAL PRIMARY KEY,
    voter_hash          VARCHAR(64) NOT NULL,
    candidate_id        INTEGER NOT NULL,
    status              VARCHAR(20) NOT NULL,
    vote_timestamp      TIMESTAMPTZ NOT NULL,
    processed_timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    metadata            JSONB,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_vote_audit_voter_hash ON vote_audit (voter_hash);
CREATE INDEX IF NOT EXISTS idx_vote_audit_status ON vote_audit (status);
CREATE INDEX IF NOT EXISTS idx_vote_audit_created_at ON vote_audit (created_at);

-- The database itself refuses a second counted vote for the same voter (G2).
CREATE UNIQUE INDEX IF NOT EXISTS uq_vote_audit_valid_voter
    ON vote_audit (voter_hash) WHERE status = 'valid';
