//! The HTTP API (axum): uploads, job status, the `/sign` route, health, metrics, the web page,
//! and — with the embedded store — the presigned part/result URLs.
use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Extension, Json, Router,
};
use base64::Engine;
use codeseal_signer::{DigestAlgorithm, KeySigner};
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::info;

use crate::{
    audit,
    context::Ctx,
    job::{check_file_name, now_ms, rfc3339, Job, JobStatus},
    store::{local::MAX_PARTS, PartEtag, StoreError},
    worker::classify_key_error,
};

const PAGE: &str = include_str!("../static/index.html");
/// Largest JSON body.
const JSON_LIMIT: usize = 256 << 10;
/// Largest message `POST /sign` accepts.
const SIGN_MESSAGE_LIMIT: usize = 64 << 10;

/// An API error: `{"error": {"code": ..., "message": ...}}`. Code and message are ours;
/// backend and SDK text never goes into one (it is logged, in the request's span, which
/// carries the request id that the response's `x-request-id` header returns).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 429 with `Retry-After: secs`.
    fn too_many(code: &'static str, message: impl Into<String>, secs: u64) -> Self {
        Self {
            retry_after: Some(secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(detail) => {
                tracing::warn!(error = %detail, "store: not found");
                Self::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "the upload or object was not found",
                )
            }
            StoreError::Conflict(detail) => {
                tracing::warn!(error = %detail, "store: conflict");
                Self::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "the item was changed by another request; retry",
                )
            }
            StoreError::Invalid { message, detail } => {
                if let Some(d) = detail {
                    tracing::warn!(error = %d, "store: refused");
                }
                Self::bad(message)
            }
            StoreError::Backend(detail) => {
                tracing::error!(error = %detail, "store failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the storage backend failed; try again",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// Retry-After of the in-flight limit: jobs take seconds, so a few seconds.
const IN_FLIGHT_RETRY_AFTER: u64 = 5;

fn in_flight_limited(ctx: &Ctx, caller: &str) -> ApiError {
    info!(caller = %caller, limit = ctx.settings.caller_max_in_flight, "caller at its in-flight limit");
    ctx.metrics
        .caller_limited
        .get_or_create(&crate::metrics::Limit {
            limit: "in_flight".into(),
        })
        .inc();
    ApiError::too_many(
        "too_many_jobs",
        format!(
            "this API key has {} jobs queued or running, its limit; retry when one is finished",
            ctx.settings.caller_max_in_flight
        ),
        IN_FLIGHT_RETRY_AFTER,
    )
}

/// The per-caller limits of a new upload: jobs in flight (checked; counted when the upload
/// completes) and bytes per UTC day (counted now).
async fn check_caller_limits(ctx: &Ctx, caller: &str, size: u64) -> ApiResult<()> {
    let s = &ctx.settings;
    if s.caller_max_in_flight > 0
        && ctx.jobs.caller_in_flight(caller).await? >= s.caller_max_in_flight
    {
        return Err(in_flight_limited(ctx, caller));
    }
    if s.caller_max_bytes_per_day > 0 {
        let now = now_ms();
        let day = now / 86_400_000;
        if !ctx
            .jobs
            .add_caller_bytes(caller, day, size, s.caller_max_bytes_per_day)
            .await?
        {
            let to_midnight = ((day + 1) * 86_400_000 - now).div_ceil(1000);
            info!(caller = %caller, size, limit = s.caller_max_bytes_per_day, "caller at its daily byte limit");
            ctx.metrics
                .caller_limited
                .get_or_create(&crate::metrics::Limit {
                    limit: "bytes_per_day".into(),
                })
                .inc();
            return Err(ApiError::too_many(
                "daily_bytes_exceeded",
                format!(
                    "this upload would pass this API key's limit of {} bytes per day (UTC)",
                    s.caller_max_bytes_per_day
                ),
                to_midnight,
            ));
        }
    }
    Ok(())
}

type ApiResult<T> = Result<T, ApiError>;

/// Who called (from the API key).
#[derive(Clone, Debug)]
pub struct Caller {
    /// Key name.
    pub name: String,
    /// May see every job.
    pub admin: bool,
}

async fn require_key(State(ctx): State<Arc<Ctx>>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| req.headers().get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(key) = presented.and_then(|p| ctx.api_keys.check(p)) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown API key (Authorization: Bearer <key>)",
        )
        .into_response();
    };
    let caller = Caller {
        name: key.name.clone(),
        admin: key.admin,
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn count_requests(State(ctx): State<Arc<Ctx>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    ctx.metrics
        .http_requests
        .get_or_create(&crate::metrics::Route {
            route,
            status: resp.status().as_u16().to_string(),
        })
        .inc();
    resp
}

/// The router.
pub fn router(ctx: Arc<Ctx>) -> Router {
    let protected = Router::new()
        .route("/uploads", post(create_upload))
        .route("/uploads/{id}/complete", post(complete_upload))
        .route("/jobs/{id}", get(get_job))
        .route("/sign", post(sign_route))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&ctx),
            require_key,
        ));
    let open = Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route(
            "/local/parts/{upload_id}/{part}",
            put(local_part).layer(DefaultBodyLimit::disable()),
        )
        .route("/local/results/{*key}", get(local_result));
    let request_id = header::HeaderName::from_static("x-request-id");
    protected
        .merge(open)
        .route_layer(middleware::from_fn_with_state(Arc::clone(&ctx), count_requests))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let rid = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %rid)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(ctx)
}

/// `GET /metrics` alone, without authentication: for `worker` processes, which serve no
/// API (bind it to a private address).
pub fn metrics_router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(ctx)
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; connect-src *; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        PAGE,
    )
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn metrics(State(ctx): State<Arc<Ctx>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.metrics.render(),
    )
}

fn check_job_id(id: &str) -> ApiResult<()> {
    if id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(ApiError::not_found("job"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUpload {
    file_name: String,
    size: u64,
}

async fn create_upload(
    State(ctx): State<Arc<Ctx>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<CreateUpload>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(req) = body.map_err(|e| ApiError::bad(e.body_text()))?;
    check_file_name(&req.file_name).map_err(ApiError::bad)?;
    let s = &ctx.settings;
    if req.size == 0 || req.size > s.max_size {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_size",
            format!("size must be 1 to {} bytes", s.max_size),
        ));
    }
    check_caller_limits(&ctx, &caller.name, req.size).await?;
    // Grow the part size when the file would need more than MAX_PARTS parts.
    let min_part = req.size.div_ceil(u64::from(MAX_PARTS));
    let part_size = s.part_size.max(min_part);
    let parts =
        u32::try_from(req.size.div_ceil(part_size)).map_err(|_| ApiError::bad("too many parts"))?;
    let mut rnd = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
    let job_id = hex::encode(rnd);
    let upload_key = format!("uploads/{job_id}/{}", req.file_name);
    let multipart_id = ctx.objects.create_multipart(&upload_key).await?;
    let mut urls = Vec::with_capacity(parts as usize);
    for n in 1..=parts {
        let url = ctx
            .objects
            .presign_part(&upload_key, &multipart_id, n, s.url_ttl)
            .await?;
        urls.push(json!({"part_number": n, "url": url}));
    }
    let now = now_ms();
    let job = Job {
        multipart_id: Some(multipart_id.clone()),
        counted: s.caller_max_in_flight > 0,
        ..Job::new(
            job_id.clone(),
            JobStatus::Uploading,
            req.file_name,
            req.size,
            caller.name.clone(),
            upload_key,
            now,
        )
    };
    if !ctx.jobs.create(&job).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "job id collision; retry",
        ));
    }
    info!(job_id = %job_id, caller = %caller.name, size = job.size, parts, "upload started");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "job_id": job_id,
            "upload_id": multipart_id,
            "part_size": part_size,
            "parts": urls,
            "expires_at": rfc3339(now + s.url_ttl.as_millis() as u64),
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteUpload {
    parts: Vec<PartEtag>,
}

async fn load_own_job(ctx: &Ctx, caller: &Caller, id: &str) -> ApiResult<Job> {
    check_job_id(id)?;
    let job = ctx
        .jobs
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    if job.caller != caller.name && !caller.admin {
        return Err(ApiError::not_found("job"));
    }
    Ok(job)
}

async fn complete_upload(
    State(ctx): State<Arc<Ctx>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<CompleteUpload>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(req) = body.map_err(|e| ApiError::bad(e.body_text()))?;
    let job = load_own_job(&ctx, &caller, &id).await?;
    if job.status == JobStatus::Queued {
        // A retried completion (the first may have failed to enqueue): send the message again
        // (a duplicate is harmless: the job is claimed once).
        enqueue(&ctx, &id).await?;
    }
    if job.status != JobStatus::Uploading {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"job_id": id, "status": job.status.as_str()})),
        ));
    }
    let multipart = job
        .multipart_id
        .clone()
        .ok_or_else(|| ApiError::bad("the job has no multipart upload"))?;
    let part_size = ctx
        .settings
        .part_size
        .max(job.size.div_ceil(u64::from(MAX_PARTS)));
    let expected = job.size.div_ceil(part_size);
    if req.parts.len() as u64 != expected {
        return Err(ApiError::bad(format!(
            "expected {expected} parts, got {}",
            req.parts.len()
        )));
    }
    for (i, p) in req.parts.iter().enumerate() {
        if p.part_number as usize != i + 1 || p.etag.is_empty() || p.etag.len() > 128 {
            return Err(ApiError::bad(
                "parts must be numbered 1..n in order, each with its ETag",
            ));
        }
    }
    // The job counts as in flight from here until it is done or failed.
    let limited = job.counted && ctx.settings.caller_max_in_flight > 0;
    if limited
        && !ctx
            .jobs
            .start_in_flight(&job.caller, ctx.settings.caller_max_in_flight)
            .await?
    {
        return Err(in_flight_limited(&ctx, &job.caller));
    }
    let queued = async {
        match ctx
            .objects
            .complete_multipart(&job.upload_key, &multipart, &req.parts)
            .await
        {
            Ok(()) => {}
            // A retried request whose first completion went through: the object is there.
            Err(StoreError::NotFound(_))
                if ctx.objects.upload_size(&job.upload_key).await? == Some(job.size) => {}
            Err(e) => return Err(ApiError::from(e)),
        }
        let size = ctx.objects.upload_size(&job.upload_key).await?;
        if size != Some(job.size) {
            return Err(ApiError::bad(format!(
                "the uploaded object has {} bytes, {} were declared",
                size.unwrap_or(0),
                job.size
            )));
        }
        Ok(ctx.jobs.mark_queued(&id, now_ms()).await?)
    }
    .await;
    let job = match queued {
        Ok((j, true)) => j,
        // A concurrent completion of the same upload queued it first and counted it: this
        // call's count is not the job's.
        Ok((j, false)) => {
            if limited {
                let _ = ctx.jobs.release_in_flight(&job.caller).await;
            }
            j
        }
        Err(e) => {
            if limited {
                let _ = ctx.jobs.release_in_flight(&job.caller).await;
            }
            return Err(e);
        }
    };
    enqueue(&ctx, &id).await?;
    info!(job_id = %id, "upload complete, queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"job_id": id, "status": job.status.as_str()})),
    ))
}

/// Sends job `id` to the workers' queue.
async fn enqueue(ctx: &Ctx, id: &str) -> ApiResult<()> {
    ctx.queue.enqueue(id).await.map_err(|e| {
        tracing::error!(job_id = %id, error = %e, "enqueueing the job failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_unavailable",
            "the job queue failed; retry the completion",
        )
    })
}

/// The JSON view of a job (with a fresh download URL when done).
pub async fn job_view(ctx: &Ctx, job: &Job) -> ApiResult<Value> {
    let (mut sha, mut size, mut digest, mut verify, mut url) = (None, None, None, None, None);
    if let (JobStatus::Done, Some(r)) = (job.status, &job.result) {
        sha = Some(r.signed_sha256.clone());
        size = Some(r.signed_size);
        digest = Some(r.authenticode_digest.clone());
        verify = serde_json::from_str::<Value>(&r.verify).ok();
        url = Some(
            ctx.objects
                .presign_result(&r.result_key, &job.file_name, Duration::from_secs(900))
                .await?,
        );
    }
    Ok(json!({
        "job_id": job.job_id,
        "file_name": job.file_name,
        "size": job.size,
        "status": job.status.as_str(),
        "error": job.error.as_deref().filter(|_| job.status == JobStatus::Failed),
        "error_reason": job.error_reason.filter(|_| job.status == JobStatus::Failed),
        "attempts": job.attempts,
        "created_at": rfc3339(job.created_ms),
        "updated_at": rfc3339(job.updated_ms),
        "signed_sha256": sha,
        "signed_size": size,
        "authenticode_digest": digest,
        "verify": verify,
        "download_url": url,
    }))
}

async fn get_job(
    State(ctx): State<Arc<Ctx>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = load_own_job(&ctx, &caller, &id).await?;
    Ok(Json(job_view(&ctx, &job).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignRequest {
    /// Base64 digest to sign.
    digest: Option<String>,
    /// Base64 message to hash and sign.
    message: Option<String>,
    /// sha256 (default), sha384, sha512.
    digest_algorithm: Option<String>,
}

/// `POST /sign`: off unless `--enable-sign-route`; admin keys only; one audit record per
/// call (signed or refused).
async fn sign_route(
    State(ctx): State<Arc<Ctx>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<SignRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    if !ctx.settings.sign_route {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "disabled",
            "the /sign route is disabled on this service",
        ));
    }
    let refused = |result: &str, digest: &str, alg: &str| {
        audit::record(
            &ctx.signer,
            &audit::Record::Raw {
                caller: &caller.name,
                digest,
                digest_algorithm: alg,
                signature_algorithm: "",
                result,
            },
        );
    };
    if !caller.admin {
        refused("forbidden", "", "");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the /sign route needs an admin API key",
        ));
    }
    match sign_request(body) {
        Err(e) => {
            refused("bad_request", "", "");
            Err(e)
        }
        Ok((alg, digest)) => sign_digest(&ctx, &caller, alg, digest).await,
    }
}

/// The digest algorithm and the digest of a `POST /sign` request.
fn sign_request(
    body: Result<Json<SignRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(DigestAlgorithm, Vec<u8>)> {
    let Json(req) = body.map_err(|e| ApiError::bad(e.body_text()))?;
    let alg = match req.digest_algorithm.as_deref().unwrap_or("sha256") {
        "sha256" => DigestAlgorithm::Sha256,
        "sha384" => DigestAlgorithm::Sha384,
        "sha512" => DigestAlgorithm::Sha512,
        other => {
            return Err(ApiError::bad(format!(
                "unsupported digest_algorithm {other:?}"
            )))
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest = match (req.digest, req.message) {
        (Some(d), None) => {
            let d = b64
                .decode(d.as_bytes())
                .map_err(|_| ApiError::bad("digest is not base64"))?;
            if d.len() != alg.output_len() {
                return Err(ApiError::bad(format!(
                    "a {alg} digest is {} bytes, got {}",
                    alg.output_len(),
                    d.len()
                )));
            }
            d
        }
        (None, Some(m)) => {
            if m.len() > SIGN_MESSAGE_LIMIT * 4 / 3 + 4 {
                return Err(ApiError::bad("message too long (64 KiB at most)"));
            }
            let m = b64
                .decode(m.as_bytes())
                .map_err(|_| ApiError::bad("message is not base64"))?;
            alg.digest(&m)
        }
        _ => return Err(ApiError::bad("give exactly one of digest and message")),
    };
    Ok((alg, digest))
}

async fn sign_digest(
    ctx: &Ctx,
    caller: &Caller,
    alg: DigestAlgorithm,
    digest: Vec<u8>,
) -> ApiResult<Json<Value>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: &dyn KeySigner = ctx.signer.identity.key().as_ref();
    let sig_alg = key.key_kind().with_digest(alg);
    let (digest_hex, alg_text, sig_alg_text) =
        (hex::encode(&digest), alg.to_string(), sig_alg.to_string());
    let record = |result: &str| {
        audit::record(
            &ctx.signer,
            &audit::Record::Raw {
                caller: &caller.name,
                digest: &digest_hex,
                digest_algorithm: &alg_text,
                signature_algorithm: &sig_alg_text,
                result,
            },
        );
    };
    let t = std::time::Instant::now();
    let signature = match key.sign_digest_checked_async(sig_alg, &digest).await {
        Ok(s) => s,
        Err(e) => {
            let (reason, _) = classify_key_error(&e);
            tracing::error!(error = %e, reason = %reason, "signing failed");
            record(reason.as_str());
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "signing_failed",
                reason.message(),
            ));
        }
    };
    ctx.metrics.sign_duration.observe(t.elapsed().as_secs_f64());
    record("signed");
    Ok(Json(json!({
        "signature": b64.encode(&signature),
        "signature_algorithm": sig_alg.to_string(),
        "digest_algorithm": alg.to_string(),
        "digest": b64.encode(&digest),
        "key": ctx.signer.key_label,
        "certificate_sha256": ctx.signer.cert_sha256,
    })))
}

#[derive(Deserialize)]
struct Presigned {
    expires: u64,
    sig: String,
    name: Option<String>,
}

async fn local_part(
    State(ctx): State<Arc<Ctx>>,
    Path((upload_id, part)): Path<(String, u32)>,
    Query(q): Query<Presigned>,
    body: Body,
) -> ApiResult<Response> {
    let local = ctx
        .local
        .as_ref()
        .ok_or_else(|| ApiError::not_found("route"))?;
    let etag = local
        .accept_part(&upload_id, part, q.expires, &q.sig, body.into_data_stream())
        .await?;
    let mut h = HeaderMap::new();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(|_| ApiError::bad("etag"))?,
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag"),
    );
    Ok((StatusCode::OK, h).into_response())
}

async fn local_result(
    State(ctx): State<Arc<Ctx>>,
    Path(key): Path<String>,
    Query(q): Query<Presigned>,
) -> ApiResult<Response> {
    let local = ctx
        .local
        .as_ref()
        .ok_or_else(|| ApiError::not_found("route"))?;
    let name = q.name.unwrap_or_default();
    let path = local.open_result(&key, &name, q.expires, &q.sig)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found("result"))?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe}\""),
            ),
        ],
        body,
    )
        .into_response())
}
