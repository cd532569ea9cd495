//! Policy commands: create, update, enable, disable, delete; exemptions.

use chrono::{DateTime, Utc};
use cortex_events::{Position, StreamName};
use uuid::Uuid;

use super::{CommandError, Commands, Decided, RequestContext};
use crate::aggregate::{DomainError, PolicyBody, PolicyCommand, PolicyState};

#[derive(Debug, Clone)]
pub struct PolicyOutcome {
    pub policy_id: Uuid,
    pub revision: u64,
    pub changed: bool,
    pub position: Position,
}

#[derive(Debug, Clone)]
pub struct ExemptionOutcome {
    pub policy_id: Uuid,
    pub exemption_id: Uuid,
    pub revision: u64,
    pub position: Position,
}

fn outcome(policy_id: Uuid, decided: &Decided) -> PolicyOutcome {
    PolicyOutcome {
        policy_id,
        revision: decided.revision,
        changed: decided.changed(),
        position: decided.position,
    }
}

impl Commands {
    /// Decides `command` on the policy's stream.
    async fn on_policy(
        &self,
        ctx: &RequestContext,
        policy_id: Uuid,
        if_match: Option<u64>,
        command: impl Fn() -> PolicyCommand + Send + Sync,
    ) -> Result<Decided, CommandError> {
        self.execute::<PolicyState, _>(ctx, &StreamName::policy(policy_id), "policy", if_match, command).await
    }

    #[tracing::instrument(skip_all)]
    pub async fn create_policy(
        &self,
        ctx: &RequestContext,
        body: PolicyBody,
    ) -> Result<PolicyOutcome, CommandError> {
        let policy_id = Uuid::now_v7();
        let decided = self
            .on_policy(ctx, policy_id, None, || PolicyCommand::Create { policy_id, body: body.clone() })
            .await?;
        Ok(outcome(policy_id, &decided))
    }

    #[tracing::instrument(skip(self, ctx, body))]
    pub async fn update_policy(
        &self,
        ctx: &RequestContext,
        policy_id: Uuid,
        if_match: Option<u64>,
        body: PolicyBody,
    ) -> Result<PolicyOutcome, CommandError> {
        let decided =
            self.on_policy(ctx, policy_id, if_match, || PolicyCommand::Update { body: body.clone() }).await?;
        Ok(outcome(policy_id, &decided))
    }

    /// Enable, disable or delete: commands with no body.
    #[tracing::instrument(skip(self, ctx, command))]
    pub async fn change_policy(
        &self,
        ctx: &RequestContext,
        policy_id: Uuid,
        if_match: Option<u64>,
        command: impl Fn() -> PolicyCommand + Send + Sync,
    ) -> Result<PolicyOutcome, CommandError> {
        let decided = self.on_policy(ctx, policy_id, if_match, command).await?;
        Ok(outcome(policy_id, &decided))
    }

    /// Exempts a resource of the caller's tenant from a policy.
    #[tracing::instrument(skip(self, ctx, reason))]
    pub async fn grant_exemption(
        &self,
        ctx: &RequestContext,
        policy_id: Uuid,
        resource_id: Uuid,
        reason: String,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<ExemptionOutcome, CommandError> {
        let (resource, _) = self.resource(ctx, resource_id).await?;
        if !resource.is_active() {
            return Err(DomainError::NotFound { what: "resource" }.into());
        }
        let exemption_id = Uuid::now_v7();
        let decided = self
            .on_policy(ctx, policy_id, None, || PolicyCommand::GrantExemption {
                exemption_id,
                resource_id,
                reason: reason.clone(),
                expires_at,
                now: Utc::now(),
            })
            .await?;
        Ok(ExemptionOutcome {
            policy_id,
            exemption_id,
            revision: decided.revision,
            position: decided.position,
        })
    }

    #[tracing::instrument(skip(self, ctx))]
    pub async fn revoke_exemption(
        &self,
        ctx: &RequestContext,
        policy_id: Uuid,
        exemption_id: Uuid,
    ) -> Result<ExemptionOutcome, CommandError> {
        let decided =
            self.on_policy(ctx, policy_id, None, || PolicyCommand::RevokeExemption { exemption_id }).await?;
        Ok(ExemptionOutcome {
            policy_id,
            exemption_id,
            revision: decided.revision,
            position: decided.position,
        })
    }

    /// The policy's state and revision, as the caller's tenant sees it.
    pub(crate) async fn policy(
        &self,
        ctx: &RequestContext,
        policy_id: Uuid,
    ) -> Result<(PolicyState, Option<u64>), CommandError> {
        let loaded = self.load::<PolicyState>(ctx, &StreamName::policy(policy_id), "policy").await?;
        Ok((loaded.state, loaded.revision))
    }
}
