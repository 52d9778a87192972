//! Amazon DynamoDB job table: partition key `job_id` (S). Every state change is a conditional
//! write, so two workers never both hold a job and a retried event changes nothing.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    error::{DisplayErrorContext, SdkError},
    types::{AttributeValue, ReturnValue},
    Client,
};

use super::{JobStore, RequestCounts, StoreError};
use crate::job::{FailureReason, Finish, Job, JobResult, JobStatus};

/// A DynamoDB-backed [`JobStore`].
#[derive(Clone, Debug)]
pub struct DynamoJobs {
    client: Client,
    table: String,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    reads: AtomicU64,
    scans: AtomicU64,
    writes: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

type Item = HashMap<String, AttributeValue>;

fn backend<E: std::error::Error + Send + Sync + 'static>(what: &str, e: SdkError<E>) -> StoreError {
    StoreError::Backend(format!("{what}: {}", DisplayErrorContext(&e)))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_item(j: &Job) -> Result<Item, StoreError> {
    let mut m = Item::new();
    m.insert("job_id".into(), s(&j.job_id));
    m.insert("status".into(), s(j.status.as_str()));
    m.insert("file_name".into(), s(&j.file_name));
    m.insert("size".into(), n(j.size));
    m.insert("caller".into(), s(&j.caller));
    m.insert("upload_key".into(), s(&j.upload_key));
    m.insert("created_ms".into(), n(j.created_ms));
    m.insert("updated_ms".into(), n(j.updated_ms));
    m.insert("lease_until_ms".into(), n(j.lease_until_ms));
    m.insert("attempts".into(), n(u64::from(j.attempts)));
    if let Some(v) = &j.multipart_id {
        m.insert("multipart_id".into(), s(v));
    }
    if let Some(v) = &j.owner {
        m.insert("owner".into(), s(v));
    }
    if let Some(v) = &j.error {
        m.insert("error".into(), s(v));
    }
    if let Some(v) = &j.error_reason {
        m.insert("error_reason".into(), s(v.as_str()));
    }
    if let Some(r) = &j.result {
        m.insert("result".into(), s(&result_json(r)?));
    }
    if j.counted {
        m.insert("counted".into(), AttributeValue::Bool(true));
    }
    Ok(m)
}

fn result_json(r: &JobResult) -> Result<String, StoreError> {
    serde_json::to_string(r).map_err(|e| StoreError::Backend(e.to_string()))
}

fn from_item(m: &Item) -> Result<Job, StoreError> {
    let bad =
        |f: &str| StoreError::Backend(format!("job item: attribute {f} missing or malformed"));
    let get_s = |f: &str| m.get(f).and_then(|v| v.as_s().ok()).cloned();
    let get_n = |f: &str| -> Result<u64, StoreError> {
        m.get(f)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad(f))
    };
    let status = get_s("status")
        .as_deref()
        .and_then(JobStatus::parse)
        .ok_or_else(|| bad("status"))?;
    let result = match get_s("result") {
        Some(t) => Some(serde_json::from_str(&t).map_err(|_| bad("result"))?),
        None => None,
    };
    Ok(Job {
        job_id: get_s("job_id").ok_or_else(|| bad("job_id"))?,
        status,
        file_name: get_s("file_name").ok_or_else(|| bad("file_name"))?,
        size: get_n("size")?,
        caller: get_s("caller").unwrap_or_default(),
        upload_key: get_s("upload_key").ok_or_else(|| bad("upload_key"))?,
        multipart_id: get_s("multipart_id"),
        created_ms: get_n("created_ms")?,
        updated_ms: get_n("updated_ms")?,
        owner: get_s("owner"),
        lease_until_ms: get_n("lease_until_ms").unwrap_or(0),
        attempts: u32::try_from(get_n("attempts").unwrap_or(0)).unwrap_or(u32::MAX),
        error: get_s("error"),
        error_reason: get_s("error_reason").as_deref().map(FailureReason::parse),
        result,
        counted: m
            .get("counted")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
    })
}

const LEASED: &str = "(#s = :signing OR #s = :verifying)";

impl DynamoJobs {
    /// Uses `sdk` (default chain; `AWS_ENDPOINT_URL` honoured) and the table `table`.
    pub fn new(sdk: &aws_config::SdkConfig, table: &str) -> Self {
        Self {
            client: Client::new(sdk),
            table: table.to_string(),
            counts: Arc::default(),
        }
    }

    /// Creates the table (on-demand billing) if it does not exist: for tests and first runs.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        if self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let attr = AttributeDefinition::builder()
            .attribute_name("job_id")
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let key = KeySchemaElement::builder()
            .attribute_name("job_id")
            .key_type(KeyType::Hash)
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr)
            .key_schema(key)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| backend("CreateTable", e))?;
        Ok(())
    }

    /// A conditional UpdateItem returning the new item, `None` when the condition failed.
    async fn update(
        &self,
        id: &str,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<Item>, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("job_id", s(id))
            .update_expression(update)
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew);
        for (k, v) in names {
            req = req.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        inc(&self.counts.writes);
        match req.send().await {
            Ok(r) => Ok(r.attributes),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend("UpdateItem", e)),
        }
    }
}

#[async_trait]
impl JobStore for DynamoJobs {
    async fn create(&self, job: &Job) -> Result<bool, StoreError> {
        inc(&self.counts.writes);
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(job)?))
            .condition_expression("attribute_not_exists(job_id)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend("PutItem", e)),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        inc(&self.counts.reads);
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("job_id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        r.item.as_ref().map(from_item).transpose()
    }

    async fn mark_queued(&self, id: &str, now_ms: u64) -> Result<(Job, bool), StoreError> {
        let r = self
            .update(
                id,
                "SET #s = :queued, updated_ms = :now REMOVE multipart_id",
                "#s = :uploading",
                &[("#s", "status")],
                vec![
                    (":queued", s("queued")),
                    (":uploading", s("uploading")),
                    (":now", n(now_ms)),
                ],
            )
            .await?;
        match r {
            Some(item) => Ok((from_item(&item)?, true)),
            None => self
                .get(id)
                .await?
                .map(|j| (j, false))
                .ok_or_else(|| StoreError::NotFound(format!("job {id}"))),
        }
    }

    async fn claim(
        &self,
        id: &str,
        token: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Option<Job>, StoreError> {
        let r = self
            .update(
                id,
                "SET #s = :signing, #o = :tok, lease_until_ms = :lu, updated_ms = :now, \
                 attempts = if_not_exists(attempts, :zero) + :one",
                &format!(
                    "attribute_exists(job_id) AND (#s = :queued OR ({LEASED} AND lease_until_ms < :now))"
                ),
                &[("#s", "status"), ("#o", "owner")],
                vec![
                    (":signing", s("signing")),
                    (":verifying", s("verifying")),
                    (":queued", s("queued")),
                    (":tok", s(token)),
                    (":lu", n(lease_until_ms)),
                    (":now", n(now_ms)),
                    (":zero", n(0)),
                    (":one", n(1)),
                ],
            )
            .await?;
        r.as_ref().map(from_item).transpose()
    }

    async fn advance(
        &self,
        id: &str,
        token: &str,
        status: JobStatus,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .update(
                id,
                "SET #s = :st, lease_until_ms = :lu, updated_ms = :now",
                &format!("#o = :tok AND {LEASED}"),
                &[("#s", "status"), ("#o", "owner")],
                vec![
                    (":st", s(status.as_str())),
                    (":signing", s("signing")),
                    (":verifying", s("verifying")),
                    (":tok", s(token)),
                    (":lu", n(lease_until_ms)),
                    (":now", n(now_ms)),
                ],
            )
            .await?
            .is_some())
    }

    async fn finish(
        &self,
        id: &str,
        token: &str,
        finish: &Finish,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut values = vec![
            (":signing", s("signing")),
            (":verifying", s("verifying")),
            (":tok", s(token)),
            (":now", n(now_ms)),
            (":zero", n(0)),
        ];
        let common = "lease_until_ms = :zero, updated_ms = :now";
        // (update expression, uses #r, uses #e)
        let (update, with_result, with_error) = match finish {
            Finish::Done(r) => {
                values.push((":st", s("done")));
                values.push((":r", s(&result_json(r)?)));
                (
                    format!("SET #s = :st, #r = :r, {common} REMOVE #o, #e, error_reason"),
                    true,
                    true,
                )
            }
            Finish::Failed { reason, error } => {
                values.push((":st", s("failed")));
                values.push((":e", s(error)));
                values.push((":reason", s(reason.as_str())));
                (
                    format!("SET #s = :st, #e = :e, error_reason = :reason, {common} REMOVE #o"),
                    false,
                    true,
                )
            }
            Finish::Release { error: Some(e) } => {
                values.push((":st", s("queued")));
                values.push((":e", s(e)));
                (
                    format!("SET #s = :st, #e = :e, {common} REMOVE #o"),
                    false,
                    true,
                )
            }
            Finish::Release { error: None } => {
                values.push((":st", s("queued")));
                (format!("SET #s = :st, {common} REMOVE #o"), false, false)
            }
        };
        let mut names = vec![("#s", "status"), ("#o", "owner")];
        if with_result {
            names.push(("#r", "result"));
        }
        if with_error {
            names.push(("#e", "error"));
        }
        Ok(self
            .update(
                id,
                &update,
                &format!("#o = :tok AND {LEASED}"),
                &names,
                values,
            )
            .await?
            .is_some())
    }

    async fn claimable(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        // Bounded: at most 100 pages per poll.
        for _ in 0..100 {
            inc(&self.counts.scans);
            let r = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(format!(
                    "#s = :queued OR ({LEASED} AND lease_until_ms < :now)"
                ))
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":queued", s("queued"))
                .expression_attribute_values(":signing", s("signing"))
                .expression_attribute_values(":verifying", s("verifying"))
                .expression_attribute_values(":now", n(now_ms))
                .projection_expression("job_id")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Scan", e))?;
            for item in r.items() {
                if let Some(id) = item.get("job_id").and_then(|v| v.as_s().ok()) {
                    out.push(id.clone());
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn add_caller_bytes(
        &self,
        caller: &str,
        day: u64,
        size: u64,
        max: u64,
    ) -> Result<bool, StoreError> {
        let Some(room) = max.checked_sub(size) else {
            return Ok(false);
        };
        // One item per caller and day; DynamoDB's TTL (attribute `expires_at`, seconds) may
        // delete it two days later.
        let expires = (day + 2) * 86_400;
        Ok(self
            .update(
                &format!("caller#{caller}#bytes#{day}"),
                "ADD bytes_used :size SET expires_at = :exp",
                "attribute_not_exists(bytes_used) OR bytes_used <= :room",
                &[],
                vec![(":size", n(size)), (":room", n(room)), (":exp", n(expires))],
            )
            .await?
            .is_some())
    }

    async fn caller_in_flight(&self, caller: &str) -> Result<u64, StoreError> {
        inc(&self.counts.reads);
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("job_id", s(&format!("caller#{caller}#in_flight")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        Ok(r.item
            .as_ref()
            .and_then(|i| i.get("in_flight"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(0, |v| u64::try_from(v).unwrap_or(0)))
    }

    async fn start_in_flight(&self, caller: &str, max: u64) -> Result<bool, StoreError> {
        Ok(self
            .update(
                &format!("caller#{caller}#in_flight"),
                "ADD in_flight :one",
                "attribute_not_exists(in_flight) OR in_flight < :max",
                &[],
                vec![(":one", n(1)), (":max", n(max))],
            )
            .await?
            .is_some())
    }

    async fn release_in_flight(&self, caller: &str) -> Result<(), StoreError> {
        self.update(
            &format!("caller#{caller}#in_flight"),
            "ADD in_flight :minus",
            "in_flight > :zero",
            &[],
            vec![(":minus", AttributeValue::N("-1".into())), (":zero", n(0))],
        )
        .await?;
        Ok(())
    }

    fn request_counts(&self) -> RequestCounts {
        RequestCounts {
            reads: self.counts.reads.load(Ordering::Relaxed),
            scans: self.counts.scans.load(Ordering::Relaxed),
            writes: self.counts.writes.load(Ordering::Relaxed),
        }
    }

    fn describe(&self) -> String {
        format!("dynamodb:{}", self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let j = Job {
            job_id: "ab".into(),
            status: JobStatus::Done,
            file_name: "a.exe".into(),
            size: 7,
            caller: "ci".into(),
            upload_key: "uploads/ab/a.exe".into(),
            multipart_id: Some("m".into()),
            created_ms: 1,
            updated_ms: 2,
            owner: None,
            lease_until_ms: 0,
            attempts: 1,
            error: None,
            error_reason: None,
            result: Some(JobResult {
                result_key: "signed/ab/a.exe".into(),
                ..JobResult::default()
            }),
            counted: true,
        };
        assert_eq!(from_item(&to_item(&j).unwrap()).unwrap(), j);
        let mut broken = to_item(&j).unwrap();
        broken.insert("status".into(), s("exploded"));
        assert!(from_item(&broken).is_err());
    }
}
