-- The compliance read models (DESIGN §3 "Compliance states", §4 "Projections"): the latest
-- result per (resource, policy), policies with their counts, each resource's overall state,
-- summaries per subscription × resource type and per tenant, and the daily trend. Written by
-- the `compliance` projector (projections/src/compliance/), which explains how.
--
-- The counting rule, which every count below follows: a result COUNTS iff its state is
-- compliant, non_compliant or exempt, its resource has a row here that is not deleted, and
-- its policy has a row here that is enabled. A resource's overall state ranks its counted
-- results non_compliant > compliant > exempt; a resource with no counted result has none and
-- is in no summary. `total` = compliant + non_compliant + exempt; `percentage` =
-- (compliant + exempt) / total as a fraction in [0, 1] (the formula of DESIGN §3), NULL when
-- total is 0. Both are generated so that they can never disagree with the counts.
--
-- Times are event times (`occurred_at`), never now(), so that a replay rebuilds every row
-- exactly. Count rows that reach zero (summary, tenant_totals) are deleted rather than kept,
-- so that the rows do not depend on how the log was cut into batches and equal a recount.

CREATE SCHEMA rm_compliance;

-- What the summaries need to know about each resource. A deleted resource keeps its row
-- (flagged) and its results, so that registering it again counts them again.
-- `subscription_id` and `resource_type` are the summary's group keys, lower-cased (as Azure
-- Resource Graph reports `type`): two spellings of one subscription or type never split a
-- group. `compliant`/`non_compliant`/`exempt` count the resource's counted results by state,
-- so that a result or a policy changing needs only this row, not all the resource's results.
CREATE TABLE rm_compliance.resources (
    tenant_id       uuid    NOT NULL,
    resource_id     uuid    NOT NULL,
    subscription_id text    NOT NULL,
    resource_type   text    NOT NULL,
    deleted         boolean NOT NULL,
    compliant       bigint  NOT NULL CHECK (compliant >= 0),
    non_compliant   bigint  NOT NULL CHECK (non_compliant >= 0),
    exempt          bigint  NOT NULL CHECK (exempt >= 0),
    state           text GENERATED ALWAYS AS (
        CASE WHEN non_compliant > 0 THEN 'non_compliant'
             WHEN compliant > 0 THEN 'compliant'
             WHEN exempt > 0 THEN 'exempt' END) STORED,
    PRIMARY KEY (tenant_id, resource_id),
    CHECK (NOT deleted OR compliant + non_compliant + exempt = 0)
);
-- The `compliance=` filter of GET /v1/resources, in its cursor order.
CREATE INDEX compliance_resources_state_idx ON rm_compliance.resources (tenant_id, state, resource_id);

-- Every policy that exists (a deleted policy's row is removed; its results stay and stop
-- counting), with the counts of its counted results. `revision` is the revision of the last
-- event of the policy's stream (exemptions included: it is what `If-Match` compares with).
CREATE TABLE rm_compliance.policies (
    tenant_id        uuid        NOT NULL,
    policy_id        uuid        NOT NULL,
    name             text        NOT NULL,
    description      text,
    category         text,
    severity         text        NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    mode             text        NOT NULL CHECK (mode IN ('all', 'indexed')),
    enabled          boolean     NOT NULL,
    scope            jsonb       NOT NULL,
    rule             jsonb       NOT NULL,
    parameters       jsonb       NOT NULL,
    parameter_values jsonb       NOT NULL,
    revision         bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    compliant        bigint      NOT NULL CHECK (compliant >= 0),
    non_compliant    bigint      NOT NULL CHECK (non_compliant >= 0),
    exempt           bigint      NOT NULL CHECK (exempt >= 0),
    total            bigint GENERATED ALWAYS AS (compliant + non_compliant + exempt) STORED,
    percentage       double precision GENERATED ALWAYS AS (
        CASE WHEN compliant + non_compliant + exempt > 0
             THEN (compliant + exempt)::double precision / (compliant + non_compliant + exempt) END) STORED,
    PRIMARY KEY (tenant_id, policy_id),
    CHECK (enabled OR compliant + non_compliant + exempt = 0)
);

-- The latest result per (resource, policy), whether it counts or not (not_applicable and
-- error never do). A ComplianceEvaluated replaces the rows of the policies it lists and keeps
-- the others. `evaluated_at` is the event's occurred_at. Every evaluation rewrites its rows
-- without touching an indexed column; the free space left in each page lets PostgreSQL do
-- that in place (HOT) instead of adding index entries.
CREATE TABLE rm_compliance.results (
    tenant_id         uuid        NOT NULL,
    resource_id       uuid        NOT NULL,
    policy_id         uuid        NOT NULL,
    state             text        NOT NULL
        CHECK (state IN ('compliant', 'non_compliant', 'exempt', 'not_applicable', 'error')),
    reason            text,
    source            text        NOT NULL,
    policy_revision   bigint,
    resource_revision bigint,
    evaluated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, resource_id, policy_id)
) WITH (fillfactor = 70);
-- A policy enabled, disabled, created or deleted reloads all its results.
CREATE INDEX compliance_results_policy_idx ON rm_compliance.results (tenant_id, policy_id, resource_id);

-- Resources by overall state, per tenant × subscription × resource type. A row exists while
-- its total is above zero.
CREATE TABLE rm_compliance.summary (
    tenant_id       uuid   NOT NULL,
    subscription_id text   NOT NULL,
    resource_type   text   NOT NULL,
    compliant       bigint NOT NULL CHECK (compliant >= 0),
    non_compliant   bigint NOT NULL CHECK (non_compliant >= 0),
    exempt          bigint NOT NULL CHECK (exempt >= 0),
    total           bigint GENERATED ALWAYS AS (compliant + non_compliant + exempt) STORED,
    percentage      double precision GENERATED ALWAYS AS (
        CASE WHEN compliant + non_compliant + exempt > 0
             THEN (compliant + exempt)::double precision / (compliant + non_compliant + exempt) END) STORED,
    PRIMARY KEY (tenant_id, subscription_id, resource_type),
    CHECK (compliant + non_compliant + exempt > 0)
);

-- Resources by overall state, per tenant. A row exists while its total is above zero.
CREATE TABLE rm_compliance.tenant_totals (
    tenant_id     uuid   NOT NULL PRIMARY KEY,
    compliant     bigint NOT NULL CHECK (compliant >= 0),
    non_compliant bigint NOT NULL CHECK (non_compliant >= 0),
    exempt        bigint NOT NULL CHECK (exempt >= 0),
    total         bigint GENERATED ALWAYS AS (compliant + non_compliant + exempt) STORED,
    percentage    double precision GENERATED ALWAYS AS (
        CASE WHEN compliant + non_compliant + exempt > 0
             THEN (compliant + exempt)::double precision / (compliant + non_compliant + exempt) END) STORED,
    CHECK (compliant + non_compliant + exempt > 0)
);

-- The tenant totals as they stood after the last event of each day that changed them (zeros
-- included: a day that emptied the totals is a point of the trend). The day is the UTC date
-- of the event's occurred_at, but never earlier than the tenant's latest day here: log order
-- is the truth, and writers' clocks may disagree.
CREATE TABLE rm_compliance.trend (
    tenant_id     uuid   NOT NULL,
    day           date   NOT NULL,
    compliant     bigint NOT NULL CHECK (compliant >= 0),
    non_compliant bigint NOT NULL CHECK (non_compliant >= 0),
    exempt        bigint NOT NULL CHECK (exempt >= 0),
    total         bigint GENERATED ALWAYS AS (compliant + non_compliant + exempt) STORED,
    percentage    double precision GENERATED ALWAYS AS (
        CASE WHEN compliant + non_compliant + exempt > 0
             THEN (compliant + exempt)::double precision / (compliant + non_compliant + exempt) END) STORED,
    PRIMARY KEY (tenant_id, day)
);
