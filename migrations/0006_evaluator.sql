-- The compliance evaluator's working state (DESIGN §3 "Compliance"; issue 7). The evaluator
-- follows `$all` like a projection (checkpoint `evaluator` in `projection_checkpoints`, status
-- in `projection_status`) and keeps here what it needs to decide: every resource as its
-- events left it, every policy's current rule, the exemptions, its own last result per
-- (resource, policy), and the revision of each `compliance-{resource}` stream it appends to.
--
-- These rows are written in the same transaction as the evaluator's checkpoint, and only at
-- the end of a batch, so that the state at a checkpoint is exactly what the events up to it
-- decided. A restart re-decides the events after the checkpoint from that state, which gives
-- the same decisions and the same (deterministic) event ids: the store takes them as
-- idempotent retries. This is the evaluator's own copy, not the read models', because those
-- are at other positions of the log. It is not rebuilt blue/green: the evaluator appends
-- events, so replaying the log from zero would decide the past again.

CREATE SCHEMA rm_evaluator;

-- Resources as their events left them (the record `resourceGroup()` and the rules read).
-- A deleted resource keeps its row, flagged, until it is registered again.
CREATE TABLE rm_evaluator.resources (
    tenant_id       uuid        NOT NULL,
    resource_id     uuid        NOT NULL,
    -- Revision of `resource-{id}` that the row reflects: the `resource_revision` of results.
    revision        bigint      NOT NULL,
    cloud_id        text        NOT NULL,
    name            text        NOT NULL,
    resource_type   text        NOT NULL,
    location        text        NOT NULL,
    kind            text,
    tags            jsonb       NOT NULL,
    properties      jsonb       NOT NULL,
    subscription_id text        NOT NULL,
    resource_group  text        NOT NULL,
    deleted         boolean     NOT NULL,
    -- Resource groups, in either of Azure's spellings of their type.
    is_group        boolean     GENERATED ALWAYS AS (
        lower(resource_type) IN ('microsoft.resources/resourcegroups',
                                 'microsoft.resources/subscriptions/resourcegroups')) STORED,
    PRIMARY KEY (tenant_id, resource_id)
);
-- The members of a group (re-evaluated when the group changes).
CREATE INDEX evaluator_resources_group
    ON rm_evaluator.resources (tenant_id, lower(subscription_id), lower(resource_group));
-- The registered groups, by (subscription, name), for `resourceGroup()`.
CREATE INDEX evaluator_resources_groups
    ON rm_evaluator.resources (tenant_id, lower(subscription_id), lower(name)) WHERE is_group;

-- Policies with the rule that decides their results. `rule_revision` is the revision of the
-- policy stream's last `PolicyCreated`/`PolicyRuleChanged`: the `policy_revision` of
-- results. Details (name, severity) do not decide results, so they do not move it.
CREATE TABLE rm_evaluator.policies (
    tenant_id        uuid    NOT NULL,
    policy_id        uuid    NOT NULL,
    rule_revision    bigint  NOT NULL,
    mode             text    NOT NULL,
    rule             jsonb   NOT NULL,
    parameters       jsonb   NOT NULL,
    parameter_values jsonb   NOT NULL,
    scope            jsonb   NOT NULL,
    enabled          boolean NOT NULL,
    deleted          boolean NOT NULL,
    PRIMARY KEY (tenant_id, policy_id)
);

-- Exemptions granted and not revoked. `expired` is set once the evaluator has let one expire
-- (at `expires_at`, by the clock when the log is quiet, or before the first event at or after
-- that time when it is catching up).
CREATE TABLE rm_evaluator.exemptions (
    tenant_id    uuid        NOT NULL,
    exemption_id uuid        NOT NULL,
    policy_id    uuid        NOT NULL,
    resource_id  uuid        NOT NULL,
    reason       text        NOT NULL,
    expires_at   timestamptz,
    expired      boolean     NOT NULL,
    PRIMARY KEY (tenant_id, exemption_id)
);
CREATE INDEX evaluator_exemptions_pair ON rm_evaluator.exemptions (tenant_id, resource_id, policy_id);
CREATE INDEX evaluator_exemptions_due ON rm_evaluator.exemptions (expires_at) WHERE NOT expired;

-- The evaluator's own last result per (resource, policy): a new result is appended only when
-- it differs in state, reason or policy revision.
CREATE TABLE rm_evaluator.decisions (
    tenant_id       uuid   NOT NULL,
    resource_id     uuid   NOT NULL,
    policy_id       uuid   NOT NULL,
    state           text   NOT NULL,
    reason          text,
    policy_revision bigint,
    PRIMARY KEY (tenant_id, resource_id, policy_id)
);

-- The last revision of each `compliance-{resource}` stream the evaluator appended to (its
-- expected revision next time; an external scanner's append in between is found on the
-- conflict and skipped over).
CREATE TABLE rm_evaluator.streams (
    resource_id uuid   PRIMARY KEY,
    revision    bigint NOT NULL
);

-- Progress of a long piece of work inside one batch (a policy's scope being re-evaluated),
-- shown by `cortex projections status`: written outside the batch transaction, cleared when
-- the batch commits.
ALTER TABLE projection_status ADD COLUMN progress jsonb;
