//! External scanners' compliance results.

use cortex_events::{Position, StreamName};

use super::{CommandError, Commands, RequestContext};
use crate::aggregate::{ComplianceCommand, DomainError, EvaluationBody, ResourceCompliance};

#[derive(Debug, Clone)]
pub struct EvaluationOutcome {
    pub changed: bool,
    pub position: Position,
}

impl Commands {
    /// Records a scanner's verdict on a resource of the caller's tenant under one of its
    /// policies, with the revisions of both as they stand now.
    #[tracing::instrument(skip_all, fields(resource_id = %body.resource_id, policy_id = %body.policy_id))]
    pub async fn record_evaluation(
        &self,
        ctx: &RequestContext,
        body: EvaluationBody,
    ) -> Result<EvaluationOutcome, CommandError> {
        let (resource, resource_revision) = self.resource(ctx, body.resource_id).await?;
        if !resource.is_active() {
            return Err(DomainError::NotFound { what: "resource" }.into());
        }
        let (policy, policy_revision) = self.policy(ctx, body.policy_id).await?;
        if !policy.is_live() {
            return Err(DomainError::NotFound { what: "policy" }.into());
        }
        let stream = StreamName::compliance(body.resource_id);
        let decided = self
            .execute::<ResourceCompliance, _>(ctx, &stream, "resource", None, || {
                ComplianceCommand::RecordExternal { body: body.clone(), policy_revision, resource_revision }
            })
            .await?;
        Ok(EvaluationOutcome { changed: decided.changed(), position: decided.position })
    }
}
