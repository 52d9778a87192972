//! # codeseal-service
//!
//! A signing service on the codeseal library: clients upload a PE file (S3 multipart upload
//! through presigned part URLs, or the embedded store's equivalent), a worker signs it with
//! the configured key (AWS KMS in production; any codeseal key URI works), verifies the
//! result with codeseal's verifier, stores it in the results bucket with its SHA-256
//! checksum, records the job in DynamoDB (or an embedded redb table) and deletes the upload.
//!
//! The same code runs as a plain server with in-process workers (`serve`), as separate
//! workers (`worker`), as AWS Lambda functions (`lambda-api`, `lambda-worker`), and on one
//! machine with no AWS account (`serve --embedded`). See `docs/service.md`.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod audit;
pub mod auth;
pub mod context;
pub mod events;
pub mod job;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metrics;
pub mod queue;
pub mod ratelimit;
pub mod setup;
pub mod store;
pub mod worker;
