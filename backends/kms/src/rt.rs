//! The backend's own small tokio runtime.
//!
//! Every SDK call of a key runs on the key's runtime, whatever called it: async code on any
//! executor (the future only awaits a join handle), a plain thread, or a thread inside
//! another tokio runtime (even a current-thread one, which a blocking wait would otherwise
//! starve). The SDK's connection pool and its background tasks live on this runtime too, so
//! they never depend on a caller's runtime staying alive or unblocked.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::runtime::{Builder, Handle, Runtime};

use crate::KmsError;

pub(crate) struct KeyRuntime {
    rt: Option<Runtime>,
    handle: Handle,
}

impl KeyRuntime {
    pub(crate) fn new() -> Result<Self, KmsError> {
        let rt = Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .thread_name("codeseal-kms")
            .enable_all()
            .build()
            .map_err(|e| KmsError::Runtime {
                message: format!("cannot start the tokio runtime: {e}"),
            })?;
        let handle = rt.handle().clone();
        Ok(Self {
            rt: Some(rt),
            handle,
        })
    }

    /// Runs `fut` on this runtime; the returned future can be awaited from any executor.
    /// The task is spawned when the future is first polled; dropping the future cancels it.
    pub(crate) fn run<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, KmsError>> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self.handle.clone();
        async move {
            let task = AbortOnDrop(handle.spawn(fut));
            task.await.map_err(join_error)
        }
    }

    /// Runs `fut` on this runtime and blocks the calling thread until it is done. Safe from
    /// plain threads and from inside any other runtime (it never enters that runtime).
    pub(crate) fn block_on<F>(&self, fut: F) -> Result<F::Output, KmsError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let task = self.handle.spawn(async move {
            // The receiver only goes away if the waiting thread is gone.
            let _ = tx.send(fut.await);
        });
        match rx.recv() {
            Ok(v) => Ok(v),
            // The sender was dropped without sending: the task panicked or was cancelled.
            Err(_) => Err(KmsError::Runtime {
                message: if task.is_finished() {
                    "the KMS task panicked".into()
                } else {
                    "the KMS task was cancelled".into()
                },
            }),
        }
    }
}

impl Drop for KeyRuntime {
    fn drop(&mut self) {
        // Runtime's own Drop blocks, which panics when a key is dropped inside async code.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn join_error(e: tokio::task::JoinError) -> KmsError {
    KmsError::Runtime {
        message: if e.is_panic() {
            "the KMS task panicked".into()
        } else {
            "the KMS task was cancelled".into()
        },
    }
}

/// A join handle that aborts its task when dropped (a cancelled sign future does not leave
/// a Sign call running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
