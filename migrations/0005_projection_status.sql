-- What `cortex projections status` shows beside the checkpoint: the state of the active runner
-- of each projection (or of a rebuild's shadow, under `<name>@shadow`), its rate, and the
-- error that stopped it. Written by the active runner outside its batch transactions; the
-- heartbeat tells a stopped process from a quiet one.
CREATE TABLE projection_status (
    projection        text             PRIMARY KEY,
    -- catching_up | live | retrying | failed | rebuilding | swapped
    state             text             NOT NULL,
    runner            text             NOT NULL,
    events_per_second double precision NOT NULL DEFAULT 0,
    last_error        text,
    error_event_id    uuid,
    error_stream      text,
    error_position    text,
    heartbeat_at      timestamptz      NOT NULL DEFAULT now(),
    updated_at        timestamptz      NOT NULL DEFAULT now()
);
