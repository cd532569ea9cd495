-- The PostgreSQL event store: one append-only table holds every stream.
--
-- Position in $all = (tx_id, seq). Readers only read rows whose transaction id is below
-- the visibility horizon pg_snapshot_xmin(pg_current_snapshot()): every transaction below
-- it has finished, so no row can later appear before a position a reader has passed (a
-- plain bigserial commits out of order under concurrent writers and would lose events).
CREATE TABLE es_events (
    tx_id           bigint      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    stream_name     text        NOT NULL,
    category        text        NOT NULL,
    stream_revision bigint      NOT NULL CHECK (stream_revision >= 0),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version >= 1),
    tenant_id       uuid        NOT NULL,
    data            json        NOT NULL,
    metadata        json        NOT NULL,
    hash            text        NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- Optimistic concurrency: two writers of the same revision cannot both succeed.
    CONSTRAINT es_events_stream_revision_key PRIMARY KEY (stream_name, stream_revision),
    -- Idempotency: an event id is stored once, whatever the stream.
    CONSTRAINT es_events_event_id_key UNIQUE (event_id)
);

-- $all order, and the catch-up scan.
CREATE UNIQUE INDEX es_events_position_idx ON es_events (tx_id, seq);
-- Audits and per-tenant replays.
CREATE INDEX es_events_tenant_idx ON es_events (tenant_id, tx_id, seq);

-- Live subscribers LISTEN on this channel. One notification per writing statement;
-- PostgreSQL folds identical notifications of one transaction into one.
CREATE FUNCTION es_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cortex_events', '');
    RETURN NULL;
END $$;

CREATE TRIGGER es_events_notify AFTER INSERT ON es_events
    FOR EACH STATEMENT EXECUTE FUNCTION es_events_notify();

-- The log is append-only: history is evidence. (A superuser can still disable this
-- trigger; the hash chain is what makes such tampering detectable.)
CREATE FUNCTION es_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'es_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER es_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON es_events
    FOR EACH STATEMENT EXECUTE FUNCTION es_events_append_only();
