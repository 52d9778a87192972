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

/// One thing to do: the job (or why it could not be found), a key or job id for the logs,
/// and the SQS message it came in.
type Work = (
    Result<Option<String>, crate::store::StoreError>,
    String,
    Option<String>,
);

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
    let (job_messages, rest) = split_job_messages(event);
    let mut work: Vec<Work> = Vec::new();
    for (message_id, id) in job_messages {
        work.push((Ok(Some(id.clone())), format!("job {id}"), message_id));
    }
    for o in events::parse(&rest)? {
        if uploads_bucket.is_some_and(|b| b != o.bucket) {
            warn!(bucket = %o.bucket, key = %o.key, "event for another bucket ignored");
            continue;
        }
        let found = worker::job_for_object(ctx, &o.key).await;
        work.push((found, o.key, o.message_id));
    }
    let never = CancellationToken::new();
    let mut failures: Vec<String> = Vec::new();
    let mut retry_invocation = Vec::new();
    for (found, key, message_id) in work {
        let retry = match found {
            Ok(None) => {
                info!(key = %key, "not an upload key; ignored");
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
                warn!(key = %key, error = %e, "cannot make a job for the object");
                true
            }
        };
        if retry {
            match message_id {
                Some(m) if !failures.contains(&m) => failures.push(m),
                Some(_) => {}
                None => retry_invocation.push(key),
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

/// Takes the SQS records whose body is the API's `{"job_id": ...}` message (an API with
/// `--queue-url` pointing at the queue that triggers this function) out of `event`: returns
/// them as (message id, job id) and the event with the other records.
fn split_job_messages(event: &Value) -> (Vec<(Option<String>, String)>, Value) {
    let Some(records) = event.get("Records").and_then(Value::as_array) else {
        return (Vec::new(), event.clone());
    };
    let mut jobs = Vec::new();
    let mut rest = Vec::new();
    for r in records {
        let job = (r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
            .then(|| r.get("body").and_then(Value::as_str))
            .flatten()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .and_then(|b| b.get("job_id").and_then(Value::as_str).map(str::to_string))
            .filter(|id| {
                id.len() == 32
                    && id
                        .bytes()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            });
        match job {
            Some(id) => jobs.push((
                r.get("messageId")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                id,
            )),
            None => rest.push(r.clone()),
        }
    }
    let mut rest_event = event.clone();
    rest_event["Records"] = Value::Array(rest);
    (jobs, rest_event)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_messages_are_split_from_notifications() {
        let id = "0123456789abcdef0123456789abcdef";
        let s3 = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "up"}, "object": {"key": "uploads/x/a.exe"}}}]});
        let event = json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "m1", "body": json!({"job_id": id}).to_string()},
            {"eventSource": "aws:sqs", "messageId": "m2", "body": s3.to_string()},
            // Not a job id: left to the notification parser (which refuses it).
            {"eventSource": "aws:sqs", "messageId": "m3", "body": json!({"job_id": "../x"}).to_string()},
        ]});
        let (jobs, rest) = split_job_messages(&event);
        assert_eq!(jobs, vec![(Some("m1".to_string()), id.to_string())]);
        assert_eq!(rest["Records"].as_array().unwrap().len(), 2);
        assert!(events::parse(&rest).is_err());
        let only_jobs = json!({"Records": [event["Records"][0].clone()]});
        let (jobs, rest) = split_job_messages(&only_jobs);
        assert_eq!(jobs.len(), 1);
        assert!(events::parse(&rest).unwrap().is_empty());
        // Other shapes pass through unchanged.
        let eb = json!({"detail-type": "Object Created", "detail": {}});
        assert_eq!(split_job_messages(&eb), (vec![], eb.clone()));
    }
}
