//! "Object created" events: S3 event notifications (direct or inside SQS messages) and
//! EventBridge "Object Created" events.
use serde_json::Value;

/// One created object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectCreated {
    /// The bucket.
    pub bucket: String,
    /// The object key (decoded).
    pub key: String,
    /// The SQS message it came in, if any (for partial batch failures).
    pub message_id: Option<String>,
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
#[error("event: {0}")]
pub struct EventError(pub String);

/// S3 notification keys are URL-encoded with `+` for spaces.
fn decode_key(k: &str) -> Result<String, EventError> {
    let b = k.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| EventError(format!("bad escape in key {k:?}")))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| EventError(format!("key {k:?} is not UTF-8")))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn s3_records(
    v: &Value,
    message_id: Option<&str>,
    out: &mut Vec<ObjectCreated>,
) -> Result<(), EventError> {
    let Some(records) = v.get("Records").and_then(Value::as_array) else {
        // An s3:TestEvent (sent when a notification is configured) has no records.
        if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
            return Ok(());
        }
        return Err(EventError("no Records".into()));
    };
    for r in records.iter().take(10_000) {
        match r.get("eventSource").and_then(Value::as_str) {
            Some("aws:s3") => {
                let name = r
                    .get("eventName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !name.starts_with("ObjectCreated:") {
                    continue;
                }
                let bucket = str_at(r, &["s3", "bucket", "name"])
                    .ok_or_else(|| EventError("S3 record without bucket".into()))?;
                let key = str_at(r, &["s3", "object", "key"])
                    .ok_or_else(|| EventError("S3 record without key".into()))?;
                out.push(ObjectCreated {
                    bucket: bucket.to_string(),
                    key: decode_key(key)?,
                    message_id: message_id.map(str::to_string),
                });
            }
            Some("aws:sqs") => {
                let id = r.get("messageId").and_then(Value::as_str);
                let body = r
                    .get("body")
                    .and_then(Value::as_str)
                    .ok_or_else(|| EventError("SQS record without body".into()))?;
                let inner: Value = serde_json::from_str(body)
                    .map_err(|e| EventError(format!("SQS body is not JSON: {e}")))?;
                parse_into(&inner, id, out)?;
            }
            other => return Err(EventError(format!("record from {other:?}"))),
        }
    }
    Ok(())
}

fn parse_into(
    v: &Value,
    message_id: Option<&str>,
    out: &mut Vec<ObjectCreated>,
) -> Result<(), EventError> {
    if v.get("detail-type").is_some() {
        if v.get("detail-type").and_then(Value::as_str) != Some("Object Created") {
            return Ok(());
        }
        let bucket = str_at(v, &["detail", "bucket", "name"])
            .ok_or_else(|| EventError("EventBridge event without bucket".into()))?;
        let key = str_at(v, &["detail", "object", "key"])
            .ok_or_else(|| EventError("EventBridge event without key".into()))?;
        out.push(ObjectCreated {
            bucket: bucket.to_string(),
            key: key.to_string(),
            message_id: message_id.map(str::to_string),
        });
        return Ok(());
    }
    s3_records(v, message_id, out)
}

/// The created objects in a Lambda event payload (S3 notification, SQS batch of S3
/// notifications or EventBridge events, or one EventBridge event).
pub fn parse(v: &Value) -> Result<Vec<ObjectCreated>, EventError> {
    let mut out = Vec::new();
    parse_into(v, None, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(key: &str) -> Value {
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:CompleteMultipartUpload",
            "s3": {"bucket": {"name": "up"}, "object": {"key": key, "size": 5}}}]})
    }

    #[test]
    fn reads_the_three_shapes() {
        let direct = parse(&s3_event("uploads/ab/my+app%28x%29.exe")).unwrap();
        assert_eq!(direct[0].key, "uploads/ab/my app(x).exe");
        assert_eq!(direct[0].bucket, "up");
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m1",
            "body": s3_event("uploads/ab/a.exe").to_string()}]});
        let got = parse(&sqs).unwrap();
        assert_eq!(got[0].message_id.as_deref(), Some("m1"));
        let eb = json!({"detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "up"}, "object": {"key": "uploads/ab/a.exe"}}});
        assert_eq!(parse(&eb).unwrap()[0].key, "uploads/ab/a.exe");
        let test_event = json!({"Event": "s3:TestEvent", "Bucket": "up"});
        assert!(parse(&test_event).unwrap().is_empty());
    }

    #[test]
    fn refuses_malformed_events() {
        assert!(parse(&json!({"hello": 1})).is_err());
        assert!(parse(&s3_event("bad%zz")).is_err());
        assert!(parse(&s3_event("bad%e2%28")).is_err());
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "body": "not json"}]});
        assert!(parse(&sqs).is_err());
    }
}
