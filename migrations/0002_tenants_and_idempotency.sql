-- Tenants, their API keys, and the command API's idempotency records.

CREATE TABLE tenants (
    tenant_id  uuid        PRIMARY KEY,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A key is stored only as the SHA-256 of its secret part (keys are 256-bit random
-- strings, so a fast hash is as safe as a slow one and lets every request be checked from
-- memory). `key_id` is the public part printed in the key itself (`cx_<key_id>_<secret>`),
-- so a request names the row it claims without a scan.
CREATE TABLE api_keys (
    key_id      uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (tenant_id),
    secret_hash bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- Idempotency-Key records (RFC draft "The Idempotency-Key HTTP Header Field"): the first
-- answer to (tenant, key), replayed for a retry with the same request, kept at least 24 h.
-- A row with status NULL is a request still in flight: a concurrent retry gets 409.
CREATE TABLE idempotency_records (
    tenant_id      uuid        NOT NULL,
    idem_key       text        NOT NULL,
    request_digest bytea       NOT NULL,
    status         smallint,
    content_type   text,
    body           bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX idempotency_records_created_idx ON idempotency_records (created_at);
