//! Group commit: writers finish their writes, then ask for a flush; one background task runs a
//! single engine flush for everyone who asked before it started, off the async runtime.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{engine::KvEngine, StorageError};

type Waiter = oneshot::Sender<Result<(), String>>;

pub struct Flusher {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl Flusher {
    pub fn start(engine: Arc<dyn KvEngine>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let engine = engine.clone();
                let timer = crate::metrics::METRICS.flush_seconds.start_timer();
                let result = tokio::task::spawn_blocking(move || engine.flush())
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                timer.observe_duration();
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
        });
        Self { tx }
    }

    pub async fn flush(&self) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| StorageError::Engine("flusher stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::Engine("flusher stopped".into()))?
            .map_err(StorageError::Engine)
    }
}
