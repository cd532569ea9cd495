-- Projection bookkeeping and the first read model (resources).
--
-- Every projection keeps its tables in a schema of its own (`rm_<projection>`) and its
-- statements name them unqualified under `SET LOCAL search_path`: a blue/green rebuild can
-- then build the same tables in a shadow schema and swap the two by renaming schemas, in one
-- transaction.

-- Where each projection has got to in $all, written in the same transaction as the rows it
-- covers, so the read models are always exactly "the log up to this position".
CREATE TABLE projection_checkpoints (
    projection     text        PRIMARY KEY,
    position_major bigint      NOT NULL,
    position_minor bigint      NOT NULL,
    events         bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE SCHEMA rm_resources;

-- The current state of every registered (not deleted) resource. `updated_at` is the time of
-- the last event applied (from the log, so a replay rebuilds it exactly).
CREATE TABLE rm_resources.resources (
    tenant_id       uuid        NOT NULL,
    resource_id     uuid        NOT NULL,
    cloud_id        text        NOT NULL,
    name            text        NOT NULL,
    type            text        NOT NULL,
    location        text        NOT NULL,
    kind            text,
    tags            jsonb       NOT NULL,
    properties      jsonb       NOT NULL,
    subscription_id text        NOT NULL,
    resource_group  text        NOT NULL,
    revision        bigint      NOT NULL,
    registered_at   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, resource_id)
);
-- The filters of GET /v1/resources, each with the stable cursor order (resource_id) last.
CREATE INDEX resources_subscription_idx ON rm_resources.resources (tenant_id, lower(subscription_id), resource_id);
CREATE INDEX resources_group_idx ON rm_resources.resources (tenant_id, lower(resource_group), resource_id);
CREATE INDEX resources_type_idx ON rm_resources.resources (tenant_id, lower(type), resource_id);
CREATE INDEX resources_location_idx ON rm_resources.resources (tenant_id, lower(replace(location, ' ', '')), resource_id);
CREATE INDEX resources_tags_idx ON rm_resources.resources USING gin (tags jsonb_path_ops);
CREATE INDEX resources_name_fts_idx ON rm_resources.resources USING gin (to_tsvector('simple', name));
