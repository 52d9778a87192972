//! The deployment material in `docs/service/` (IAM policies, bucket settings, event wiring,
//! the ECS task definition) is JSON that people pass to `aws ... file://`. These tests parse
//! every file and check the promises `docs/service.md` makes about them, so that a broken
//! edit fails CI instead of a deployment. They also check that the guide and the files
//! agree, and the container recipe's essentials.
//!
//! Plain file checks: nothing here talks to AWS.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs_dir() -> PathBuf {
    repo_root().join("docs").join("service")
}

/// Every `docs/service/*.json`, parsed, sorted by name.
fn json_files() -> Vec<(String, Value)> {
    let dir = docs_dir();
    let mut files: Vec<(String, Value)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            let value: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            (name, value)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

fn file(name: &str) -> Value {
    json_files()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("docs/service/{name} is missing"))
}

/// A string or an array of strings, as IAM allows for Action and Resource.
fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn statements(policy: &Value) -> Vec<&Value> {
    match policy.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        _ => Vec::new(),
    }
}

fn actions(stmt: &Value) -> Vec<String> {
    stmt.get("Action").and_then(strings).unwrap_or_default()
}

fn resources(stmt: &Value) -> Vec<String> {
    stmt.get("Resource").and_then(strings).unwrap_or_default()
}

fn is_allow(stmt: &Value) -> bool {
    stmt.get("Effect").and_then(Value::as_str) == Some("Allow")
}

/// `"*"` or `{"AWS": "*"}`: everyone.
fn principal_is_everyone(stmt: &Value) -> bool {
    match stmt.get("Principal") {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(map)) => map
            .values()
            .any(|v| strings(v).is_some_and(|list| list.iter().any(|s| s == "*"))),
        _ => false,
    }
}

/// A role trust policy: every statement lets a principal assume the role.
fn is_trust_policy(policy: &Value) -> bool {
    let stmts = statements(policy);
    !stmts.is_empty()
        && stmts
            .iter()
            .all(|s| actions(s).iter().all(|a| a.starts_with("sts:AssumeRole")))
}

/// A KMS key policy: a resource policy (every statement names a Principal) about KMS
/// actions only. In a key policy the Resource is always `"*"`, which there means "this key".
fn is_key_policy(policy: &Value) -> bool {
    let stmts = statements(policy);
    !stmts.is_empty()
        && stmts.iter().all(|s| {
            s.get("Principal").is_some() && actions(s).iter().all(|a| a.starts_with("kms:"))
        })
}

/// The key policy's standard statement that lets IAM policies grant use of the key.
fn is_account_root_statement(stmt: &Value) -> bool {
    stmt.get("Principal")
        .and_then(|p| p.get("AWS"))
        .and_then(Value::as_str)
        .is_some_and(|arn| arn.starts_with("arn:aws:iam::") && arn.ends_with(":root"))
}

/// The resources an identity policy allows `action` on.
fn allowed_resources(policy: &Value, action: &str) -> Vec<String> {
    statements(policy)
        .into_iter()
        .filter(|s| is_allow(s) && actions(s).iter().any(|a| a == action))
        .flat_map(resources)
        .collect()
}

fn condition_value<'a>(stmt: &'a Value, operator: &str, key: &str) -> Option<&'a Value> {
    stmt.get("Condition")?.get(operator)?.get(key)
}

fn action_is_well_formed(action: &str) -> bool {
    match action.split_once(':') {
        Some((service, name)) => {
            !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '*')
        }
        None => false,
    }
}

/// Every policy document: the IAM grammar subset the guide uses, and no wildcards that
/// would grant more than the guide says.
#[test]
fn policies_are_well_formed_and_least_privilege() {
    let mut problems = Vec::new();
    let mut policies = 0;
    for (name, doc) in json_files() {
        if doc.get("Statement").is_none() {
            continue;
        }
        policies += 1;
        let mut bad = |msg: String| problems.push(format!("{name}: {msg}"));
        if doc.get("Version").and_then(Value::as_str) != Some("2012-10-17") {
            bad("Version must be \"2012-10-17\"".into());
        }
        let stmts = statements(&doc);
        if stmts.is_empty() {
            bad("Statement must be a non-empty array".into());
        }
        let trust = is_trust_policy(&doc);
        let key_policy = is_key_policy(&doc);
        let with_principal = stmts
            .iter()
            .filter(|s| s.get("Principal").is_some())
            .count();
        if with_principal != 0 && with_principal != stmts.len() {
            bad("mixes identity statements (no Principal) and resource statements".into());
        }
        for (i, stmt) in stmts.iter().enumerate() {
            let sid = stmt
                .get("Sid")
                .and_then(Value::as_str)
                .map_or_else(|| format!("statement {i}"), |s| format!("statement {s}"));
            let mut bad = |msg: &str| problems.push(format!("{name}: {sid}: {msg}"));
            for forbidden in ["NotAction", "NotResource", "NotPrincipal"] {
                if stmt.get(forbidden).is_some() {
                    bad(&format!("{forbidden} is not used in these policies"));
                }
            }
            match stmt.get("Effect").and_then(Value::as_str) {
                Some("Allow" | "Deny") => {}
                _ => bad("Effect must be Allow or Deny"),
            }
            let acts = match stmt.get("Action").and_then(strings) {
                Some(a) => a,
                None => {
                    bad("Action must be a string or a non-empty array of strings");
                    Vec::new()
                }
            };
            for a in &acts {
                if a == "*" {
                    bad("\"Action\": \"*\" grants everything");
                } else if !action_is_well_formed(a) {
                    bad(&format!("{a:?} is not of the form service:Action"));
                } else if a.ends_with(":*")
                    && is_allow(stmt)
                    && !(key_policy && is_account_root_statement(stmt))
                {
                    bad(&format!("{a} allows every action of the service"));
                }
            }
            if is_allow(stmt) && principal_is_everyone(stmt) {
                bad("allows everyone (Principal \"*\")");
            }
            if trust {
                if stmt.get("Resource").is_some() {
                    bad("a trust policy has no Resource");
                }
                if stmt.get("Principal").is_none() {
                    bad("a trust policy names its Principal");
                }
                continue;
            }
            let res = match stmt.get("Resource").and_then(strings) {
                Some(r) => r,
                None => {
                    bad("Resource must be a string or a non-empty array of strings");
                    Vec::new()
                }
            };
            for r in &res {
                if key_policy {
                    if r != "*" {
                        bad("in a key policy the Resource is \"*\" (this key)");
                    }
                    if stmt.get("Principal").is_none() {
                        bad("a key policy statement names its Principal");
                    }
                } else if r == "*" {
                    bad("\"Resource\": \"*\": name the resources");
                } else if !r.starts_with("arn:aws:") {
                    bad(&format!("{r:?} is not an ARN"));
                }
            }
            if is_allow(stmt) && stmt.get("Principal").is_none() {
                if acts.iter().any(|a| a == "s3:ListBucket")
                    && condition_value(stmt, "StringLike", "s3:prefix").is_none()
                    && condition_value(stmt, "StringEquals", "s3:prefix").is_none()
                {
                    bad("s3:ListBucket without an s3:prefix condition lists the whole bucket");
                }
                if acts.iter().any(|a| a == "kms:Sign") {
                    if condition_value(stmt, "StringEquals", "kms:MessageType")
                        .and_then(Value::as_str)
                        != Some("DIGEST")
                    {
                        bad("kms:Sign must be limited to kms:MessageType DIGEST");
                    }
                    if condition_value(stmt, "StringEquals", "kms:SigningAlgorithm").is_none() {
                        bad("kms:Sign must be limited to a kms:SigningAlgorithm");
                    }
                }
            }
        }
    }
    assert!(
        policies >= 10,
        "expected the guide's policies, found {policies}"
    );
    assert!(
        problems.is_empty(),
        "policy problems:\n{}",
        problems.join("\n")
    );
}

/// Each role can touch only its side of the flow (docs/service.md, "IAM roles").
#[test]
fn roles_get_only_their_prefixes() {
    let api = file("api-role-policy.json");
    let worker = file("worker-role-policy.json");
    let only_under = |list: Vec<String>, prefixes: &[&str], what: &str| {
        assert!(!list.is_empty(), "{what}: not granted at all");
        for r in list {
            assert!(
                prefixes.iter().any(|p| r.ends_with(p)),
                "{what}: {r} is not under {prefixes:?}"
            );
        }
    };
    let uploads = &["/uploads/*"][..];
    let signed = &["/signed/*"][..];
    // The API: multipart uploads under uploads/, a HEAD of the completed upload, and
    // presigned downloads under signed/.
    only_under(
        allowed_resources(&api, "s3:PutObject"),
        uploads,
        "API s3:PutObject",
    );
    only_under(
        allowed_resources(&api, "s3:AbortMultipartUpload"),
        uploads,
        "API s3:AbortMultipartUpload",
    );
    only_under(
        allowed_resources(&api, "s3:GetObject"),
        &["/uploads/*", "/signed/*"],
        "API s3:GetObject",
    );
    // The worker: reads and deletes uploads, writes results (and deletes its own copy of a
    // result when it loses the lease).
    only_under(
        allowed_resources(&worker, "s3:GetObject"),
        uploads,
        "worker s3:GetObject",
    );
    only_under(
        allowed_resources(&worker, "s3:DeleteObject"),
        &["/uploads/*", "/signed/*"],
        "worker s3:DeleteObject",
    );
    only_under(
        allowed_resources(&worker, "s3:PutObject"),
        signed,
        "worker s3:PutObject",
    );
    for action in [
        "s3:DeleteObject",
        "s3:ListBucket",
        "dynamodb:Scan",
        "kms:Sign",
    ] {
        assert!(
            allowed_resources(&api, action).is_empty(),
            "api-role-policy.json must not grant {action}"
        );
    }
    // The API process opens the key at start (DescribeKey, GetPublicKey) to check it against
    // the certificate; kms:Sign comes only with api-sign-route-policy.json.
    for a in statements(&api).into_iter().flat_map(actions) {
        assert!(
            !a.starts_with("kms:") || a == "kms:DescribeKey" || a == "kms:GetPublicKey",
            "api-role-policy.json: {a} belongs in api-sign-route-policy.json"
        );
    }
    for action in [
        "kms:Sign",
        "kms:DescribeKey",
        "kms:GetPublicKey",
        "dynamodb:UpdateItem",
    ] {
        assert!(
            !allowed_resources(&worker, action).is_empty(),
            "the worker needs {action}"
        );
    }
    // With the work queue, workers never scan the table (docs/service.md, "Fleet scale").
    assert!(
        allowed_resources(&worker, "dynamodb:Scan").is_empty(),
        "worker-role-policy.json must not grant dynamodb:Scan"
    );
    let worker_queue = file("worker-queue-policy.json");
    let work_queue = "arn:aws:sqs:eu-west-1:111122223333:codeseal-work";
    for action in [
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
    ] {
        assert_eq!(
            allowed_resources(&worker_queue, action),
            vec![work_queue.to_string()],
            "worker-queue-policy.json: {action}"
        );
    }
    assert_eq!(
        allowed_resources(&worker_queue, "sqs:SendMessage"),
        vec![format!("{work_queue}-dlq")],
        "workers send only dead letters"
    );
    assert_eq!(
        allowed_resources(&file("api-queue-policy.json"), "sqs:SendMessage"),
        vec![work_queue.to_string()]
    );
    let attrs = file("work-queue-attributes.json");
    let redrive: Value = attrs
        .get("RedrivePolicy")
        .and_then(Value::as_str)
        .map(|s| serde_json::from_str(s).expect("RedrivePolicy is JSON in a string"))
        .expect("a redrive policy as the backstop");
    let max_receive: u64 = redrive
        .get("maxReceiveCount")
        .and_then(|v| v.as_str().and_then(|s| s.parse().ok()))
        .expect("maxReceiveCount");
    // Above the default --max-receives (5): the workers dead-letter first, with the reason.
    assert!(max_receive > 5, "maxReceiveCount {max_receive}");
    let sign_route = file("api-sign-route-policy.json");
    assert_eq!(
        allowed_resources(&sign_route, "kms:Sign"),
        allowed_resources(&worker, "kms:Sign"),
        "the /sign route and the worker sign with the same key"
    );
    assert_eq!(
        allowed_resources(&api, "kms:DescribeKey"),
        allowed_resources(&worker, "kms:Sign"),
        "the API opens the key the worker signs with"
    );
}

/// The TLS-only bucket policies deny every request made without TLS, on the bucket and on
/// its objects.
#[test]
fn bucket_policies_deny_plain_http() {
    for name in ["uploads-bucket-policy.json", "results-bucket-policy.json"] {
        let doc = file(name);
        let deny = statements(&doc)
            .into_iter()
            .find(|s| {
                s.get("Effect").and_then(Value::as_str) == Some("Deny")
                    && condition_value(s, "Bool", "aws:SecureTransport").is_some()
            })
            .unwrap_or_else(|| panic!("{name}: no Deny on aws:SecureTransport"));
        assert_eq!(
            condition_value(deny, "Bool", "aws:SecureTransport").and_then(Value::as_str),
            Some("false"),
            "{name}: must deny when aws:SecureTransport is \"false\""
        );
        assert!(principal_is_everyone(deny), "{name}: must deny everyone");
        assert_eq!(actions(deny), ["s3:*"], "{name}: must deny every S3 action");
        let res = resources(deny);
        let bucket = res
            .iter()
            .find(|r| !r.contains('/'))
            .unwrap_or_else(|| panic!("{name}: the bucket ARN is missing"));
        assert!(
            res.contains(&format!("{bucket}/*")),
            "{name}: the objects ({bucket}/*) are missing"
        );
    }
}

/// The key policy keeps IAM in charge and limits who may sign, and how.
#[test]
fn signing_key_policy_guards() {
    let doc = file("signing-key-policy.json");
    let stmts = statements(&doc);
    assert!(
        stmts
            .iter()
            .any(|s| is_allow(s) && is_account_root_statement(s)),
        "the statement that enables IAM policies must stay, or the key becomes unmanageable"
    );
    let sign_denies: Vec<&&Value> = stmts
        .iter()
        .filter(|s| !is_allow(s) && actions(s).iter().any(|a| a == "kms:Sign"))
        .collect();
    assert!(
        sign_denies
            .iter()
            .any(|s| condition_value(s, "ArnNotEquals", "aws:PrincipalArn").is_some()),
        "a Deny must keep other principals from signing"
    );
    assert!(
        sign_denies.iter().any(|s| {
            condition_value(s, "StringNotEquals", "kms:MessageType").and_then(Value::as_str)
                == Some("DIGEST")
        }),
        "a Deny must refuse Sign requests that are not digests"
    );
}

#[test]
fn bucket_settings() {
    let block = file("public-access-block.json");
    for setting in [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block.get(setting), Some(&Value::Bool(true)), "{setting}");
    }

    for (name, prefix) in [
        ("uploads-bucket-lifecycle.json", "uploads/"),
        ("results-bucket-lifecycle.json", "signed/"),
    ] {
        let doc = file(name);
        let rules = doc
            .get("Rules")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{name}: no Rules"));
        for rule in rules {
            assert_eq!(
                rule.get("Status").and_then(Value::as_str),
                Some("Enabled"),
                "{name}"
            );
            assert_eq!(
                rule.pointer("/Filter/Prefix").and_then(Value::as_str),
                Some(prefix),
                "{name}: every rule is limited to {prefix}"
            );
        }
        assert!(
            rules.iter().any(|r| r
                .pointer("/AbortIncompleteMultipartUpload/DaysAfterInitiation")
                .and_then(Value::as_u64)
                .is_some_and(|d| d >= 1)),
            "{name}: incomplete multipart uploads must be aborted"
        );
        assert!(
            rules.iter().any(|r| r
                .pointer("/NoncurrentVersionExpiration/NoncurrentDays")
                .is_some()),
            "{name}: versioned buckets need old versions expired"
        );
    }

    for (name, method) in [
        ("uploads-bucket-cors.json", "PUT"),
        ("results-bucket-cors.json", "GET"),
    ] {
        let doc = file(name);
        let rules = doc
            .get("CORSRules")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{name}: no CORSRules"));
        for rule in rules {
            let origins = rule
                .get("AllowedOrigins")
                .and_then(strings)
                .unwrap_or_default();
            assert!(!origins.is_empty(), "{name}: AllowedOrigins is required");
            for o in origins {
                assert!(
                    o.starts_with("https://") && !o.contains('*'),
                    "{name}: origin {o:?} must be the page's own https origin"
                );
            }
            let methods = rule
                .get("AllowedMethods")
                .and_then(strings)
                .unwrap_or_default();
            assert!(methods.iter().any(|m| m == method), "{name}: {method}");
            for m in methods {
                assert!(
                    ["GET", "HEAD", "PUT"].contains(&m.as_str()),
                    "{name}: {m} is not needed"
                );
            }
            let exposed = rule
                .get("ExposeHeaders")
                .and_then(strings)
                .unwrap_or_default();
            assert!(
                exposed.iter().any(|h| h.eq_ignore_ascii_case("ETag")),
                "{name}: the page reads ETag"
            );
        }
    }

    let sse_s3 = file("bucket-encryption-sse-s3.json");
    assert_eq!(
        sse_s3
            .pointer("/Rules/0/ApplyServerSideEncryptionByDefault/SSEAlgorithm")
            .and_then(Value::as_str),
        Some("AES256")
    );
    let sse_kms = file("bucket-encryption-sse-kms.json");
    let bucket_key = sse_kms
        .pointer("/Rules/0/ApplyServerSideEncryptionByDefault/KMSMasterKeyID")
        .and_then(Value::as_str)
        .expect("SSE-KMS names its key");
    let data_key_policy = file("sse-kms-data-key-policy.json");
    assert_eq!(
        allowed_resources(&data_key_policy, "kms:GenerateDataKey"),
        [bucket_key],
        "the SSE-KMS role policy is for the bucket key"
    );
    let signing_key = allowed_resources(&file("worker-role-policy.json"), "kms:Sign");
    assert!(
        !signing_key.iter().any(|k| k == bucket_key),
        "the bucket encryption key must not be the signing key"
    );
}

/// S3 events reach the worker only for objects under uploads/, and the queue's settings fit
/// the Lambda worker.
#[test]
fn event_wiring() {
    for (name, list) in [
        ("uploads-notification-sqs.json", "QueueConfigurations"),
        (
            "uploads-notification-lambda.json",
            "LambdaFunctionConfigurations",
        ),
    ] {
        let doc = file(name);
        let configs = doc
            .get(list)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{name}: no {list}"));
        assert!(!configs.is_empty(), "{name}");
        for c in configs {
            let events = c.get("Events").and_then(strings).unwrap_or_default();
            assert!(
                !events.is_empty() && events.iter().all(|e| e.starts_with("s3:ObjectCreated:")),
                "{name}: only object-created events"
            );
            let rules = c
                .pointer("/Filter/Key/FilterRules")
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("{name}: no key filter"));
            assert!(
                rules.iter().any(|r| {
                    r.get("Name").and_then(Value::as_str) == Some("prefix")
                        && r.get("Value").and_then(Value::as_str) == Some("uploads/")
                }),
                "{name}: the filter must be the prefix uploads/"
            );
        }
    }
    assert!(file("uploads-notification-eventbridge.json")
        .get("EventBridgeConfiguration")
        .is_some_and(Value::is_object));

    let pattern = file("eventbridge-rule-pattern.json");
    assert_eq!(
        pattern.get("source").and_then(strings),
        Some(vec!["aws.s3".into()])
    );
    assert_eq!(
        pattern.get("detail-type").and_then(strings),
        Some(vec!["Object Created".into()])
    );
    assert_eq!(
        pattern
            .pointer("/detail/object/key/0/prefix")
            .and_then(Value::as_str),
        Some("uploads/")
    );

    let queue = file("uploads-queue-policy.json");
    for stmt in statements(&queue) {
        assert_eq!(
            stmt.pointer("/Principal/Service").and_then(Value::as_str),
            Some("s3.amazonaws.com")
        );
        assert!(
            condition_value(stmt, "ArnEquals", "aws:SourceArn").is_some()
                && condition_value(stmt, "StringEquals", "aws:SourceAccount").is_some(),
            "uploads-queue-policy.json: only the uploads bucket of this account may send"
        );
    }

    let attrs = file("uploads-queue-attributes.json");
    let number = |key: &str| -> u64 {
        attrs
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!("uploads-queue-attributes.json: {key} (a number in a string)")
            })
    };
    // Six times the Lambda worker's 900 s timeout, as AWS recommends for SQS consumers.
    assert!(number("VisibilityTimeout") >= 6 * 900);
    let redrive: Value = attrs
        .get("RedrivePolicy")
        .and_then(Value::as_str)
        .map(|s| serde_json::from_str(s).expect("RedrivePolicy is JSON in a string"))
        .expect("a dead-letter queue");
    let max_receive: u64 = redrive
        .get("maxReceiveCount")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .expect("maxReceiveCount");
    // Above the default --max-attempts (3): the job table decides when a job has failed.
    assert!(max_receive > 3, "maxReceiveCount {max_receive}");
    assert!(redrive
        .get("deadLetterTargetArn")
        .and_then(Value::as_str)
        .is_some_and(|a| a.starts_with("arn:aws:sqs:")));
}

#[test]
fn job_table_and_task_definition() {
    let table = file("dynamodb-table.json");
    let keys = table
        .get("KeySchema")
        .and_then(Value::as_array)
        .expect("KeySchema");
    assert_eq!(keys.len(), 1, "partition key only, no sort key");
    assert_eq!(
        keys[0].get("AttributeName").and_then(Value::as_str),
        Some("job_id")
    );
    assert_eq!(keys[0].get("KeyType").and_then(Value::as_str), Some("HASH"));
    assert_eq!(
        table
            .pointer("/AttributeDefinitions/0/AttributeType")
            .and_then(Value::as_str),
        Some("S")
    );

    let task = file("ecs-task-definition.json");
    let container = task
        .pointer("/containerDefinitions/0")
        .expect("a container definition");
    let stop = container
        .get("stopTimeout")
        .and_then(Value::as_u64)
        .expect("stopTimeout for the graceful shutdown");
    assert!((30..=120).contains(&stop), "Fargate allows at most 120 s");
    assert_eq!(
        container.get("readonlyRootFilesystem"),
        Some(&Value::Bool(true))
    );
    assert!(
        container
            .get("mountPoints")
            .and_then(Value::as_array)
            .is_some_and(|m| m
                .iter()
                .any(|p| p.get("containerPath") == Some(&Value::String("/tmp".into())))),
        "a read-only root needs a writable /tmp"
    );
    let env = container
        .get("environment")
        .and_then(Value::as_array)
        .expect("environment");
    for var in env {
        let name = var.get("name").and_then(Value::as_str).unwrap_or_default();
        assert!(
            name.starts_with("CODESEAL_SERVICE_") || name.starts_with("AWS_"),
            "unexpected variable {name}"
        );
    }
}

/// Every ARN in the files uses the guide's example account and region, so a reader
/// replacing them finds every place.
#[test]
fn example_names_are_consistent() {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.starts_with("arn:") => out.push(s.clone()),
            Value::String(s) if s.starts_with('{') => {
                if let Ok(inner) = serde_json::from_str::<Value>(s) {
                    walk(&inner, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => map.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for (name, doc) in json_files() {
        let mut arns = Vec::new();
        walk(&doc, &mut arns);
        for arn in arns {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            if parts.len() < 6 || parts[1] != "aws" {
                problems.push(format!("{name}: {arn} is not an aws ARN"));
                continue;
            }
            if !["", "eu-west-1"].contains(&parts[3]) {
                problems.push(format!("{name}: {arn}: region is not eu-west-1"));
            }
            if !["", "111122223333"].contains(&parts[4]) {
                problems.push(format!("{name}: {arn}: account is not 111122223333"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// docs/service.md links every file here, and every link it has resolves.
#[test]
fn the_guide_and_the_files_agree() {
    let guide_path = repo_root().join("docs").join("service.md");
    let guide = fs::read_to_string(&guide_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", guide_path.display()));
    for (name, _) in json_files() {
        assert!(
            guide.contains(&format!("(service/{name})")),
            "docs/service.md does not link service/{name}"
        );
    }
    let mut rest = guide.as_str();
    while let Some(start) = rest.find("(service/") {
        let link = &rest[start + 1..];
        let end = link.find(')').expect("closing parenthesis");
        let target = &link[..end];
        assert!(
            repo_root().join("docs").join(target).is_file(),
            "docs/service.md links {target}, which does not exist"
        );
        rest = &link[end..];
    }
    assert!(
        guide.contains("img/service-page.png"),
        "the guide shows the web page"
    );
}

/// The container recipe: locked release build of this crate, unprivileged user, the
/// binary as the entry point, and a build context without target/.
#[test]
fn container_recipe() {
    let dockerfile = fs::read_to_string(repo_root().join("service").join("Dockerfile"))
        .expect("service/Dockerfile");
    assert!(dockerfile.contains("cargo build --release -p codeseal-service --locked"));
    let users: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .collect();
    assert!(!users.is_empty(), "the image must not run as root");
    for u in users {
        let user = u.split(':').next().unwrap_or_default().trim();
        assert!(user != "root" && user != "0", "USER {u}");
    }
    assert!(dockerfile.contains(r#"ENTRYPOINT ["codeseal-service"]"#));
    assert!(dockerfile
        .lines()
        .any(|l| l.trim_start().starts_with("CMD [\"serve\"")));

    let ignore = fs::read_to_string(repo_root().join(".dockerignore")).expect(".dockerignore");
    let entries: Vec<&str> = ignore.lines().map(str::trim).collect();
    for needed in ["target/", "fuzz/", "**/node_modules/"] {
        assert!(
            entries.contains(&needed),
            ".dockerignore must exclude {needed}"
        );
    }
}
