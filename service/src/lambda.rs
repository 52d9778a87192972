//! AWS Lambda entry points: the HTTP API behind API Gateway, and the worker for S3 event
//! notifications (direct, through SQS with partial batch failures, or EventBridge).
use std::sync::Arc;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    context::Ctx,
    events,
    worker::{self, Outcome},
};

/// Handles one event payload: every created object under `uploads/` becomes (or finds) its
/// job, which is processed now. Returns the SQS partial-batch response: messages whose
/// object could not be processed (store errors, lease held elsewhere, released) are listed
/// so SQS delivers them again; jobs that failed for good are not (their failure is recorded).
/// For events that did not come through SQS (direct S3 notifications, EventBridge) there is
/// no partial batch response: the invocation fails, so that Lambda retries it.
pub async fn handle_event(
    ctx: &Arc<Ctx>,
    uploads_bucket: Option<&str>,
    event: &Value,
    worker_id: &str,
) -> Result<Value, events::EventError> {
    let objects = events::parse(event)?;
    let never = CancellationToken::new();
    let mut failures: Vec<String> = Vec::new();
    let mut retry_invocation = Vec::new();
    for o in objects {
        if uploads_bucket.is_some_and(|b| b != o.bucket) {
            warn!(bucket = %o.bucket, key = %o.key, "event for another bucket ignored");
            continue;
        }
        let retry = match worker::job_for_object(ctx, &o.key).await {
            Ok(None) => {
                info!(key = %o.key, "not an upload key; ignored");
                false
            }
            Ok(Some(id)) => match worker::process(ctx, &id, worker_id, &never).await {
                Outcome::Done | Outcome::Failed(_) => false,
                Outcome::Released => true,
                // Finished already (a repeated event) or held by a live worker.
                Outcome::NotClaimed => ctx
                    .jobs
                    .get(&id)
                    .await
                    .map(|j| j.is_some_and(|j| !j.status.is_terminal()))
                    .unwrap_or(true),
            },
            Err(e) => {
                warn!(key = %o.key, error = %e, "cannot make a job for the object");
                true
            }
        };
        if retry {
            match o.message_id {
                Some(m) if !failures.contains(&m) => failures.push(m),
                Some(_) => {}
                None => retry_invocation.push(o.key),
            }
        }
    }
    if !retry_invocation.is_empty() {
        return Err(events::EventError(format!(
            "not processed yet, retry the event: {}",
            retry_invocation.join(", ")
        )));
    }
    Ok(json!({
        "batchItemFailures": failures.iter().map(|m| json!({"itemIdentifier": m})).collect::<Vec<_>>()
    }))
}

/// Runs the worker function (blocks until the Lambda runtime stops it).
pub async fn run_worker(
    ctx: Arc<Ctx>,
    uploads_bucket: Option<String>,
) -> Result<(), lambda_runtime::Error> {
    let worker_id = format!(
        "lambda-{}",
        std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| "local".into())
    );
    lambda_runtime::run(lambda_runtime::service_fn(
        move |ev: lambda_runtime::LambdaEvent<Value>| {
            let (ctx, bucket, wid) = (Arc::clone(&ctx), uploads_bucket.clone(), worker_id.clone());
            async move {
                handle_event(&ctx, bucket.as_deref(), &ev.payload, &wid)
                    .await
                    .map_err(|e| lambda_runtime::Error::from(e.to_string()))
            }
        },
    ))
    .await
}

/// Runs the HTTP API function.
pub async fn run_api(ctx: Arc<Ctx>) -> Result<(), lambda_http::Error> {
    lambda_http::run(crate::api::router(ctx)).await
}
