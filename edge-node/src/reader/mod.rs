//! Card readers. A reader is a task that turns cards on its antenna (or wire, or socket) into
//! [`TapRequest`]s and shows the node's verdict back to the user.
//!
//! (Interface fixed here; implementations: `simulated` everywhere, `rpi` behind feature `rpi`.)

use std::future::Future;
use std::pin::Pin;

#[cfg(feature = "rpi")]
pub mod rpi;
pub mod simulated;

use nimbus_core::reader::{CardRead, Feedback, ReaderKind};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// One debounced card read on its way to the attendance logic, with the channel on which the
/// verdict comes back. The verdict is sent only once the tap is durable (or has failed).
#[derive(Debug)]
pub struct TapRequest {
    /// The card and the reader that saw it.
    pub read: CardRead,
    /// Where the node answers.
    pub reply: oneshot::Sender<Feedback>,
}

/// Why a reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The reader's I/O failed (socket, SPI, GPIO, script file).
    #[error("reader I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The reader hardware misbehaved.
    #[error("reader hardware: {0}")]
    Hardware(String),
    /// The node stopped listening for taps.
    #[error("the node is no longer accepting taps")]
    Closed,
}

/// A future a reader runs until shutdown.
pub type ReaderTask = Pin<Box<dyn Future<Output = Result<(), ReaderError>> + Send>>;

/// A source of card taps.
pub trait CardReader: Send {
    /// Which kind of reader this is (kept with every tap).
    fn kind(&self) -> ReaderKind;

    /// Runs until `shutdown` is cancelled: sends each debounced card to `taps` and shows the
    /// [`Feedback`] that comes back.
    fn run(self: Box<Self>, taps: mpsc::Sender<TapRequest>, shutdown: CancellationToken) -> ReaderTask;
}

/// Offers one read to the node and waits for its verdict.
///
/// Every reader funnels through here so they agree on the edge cases: a node that has dropped its
/// tap receiver is [`ReaderError::Closed`] (the reader should stop), while a node that dropped
/// just this tap's reply sender is answered with [`Feedback::Error`] so the student taps again.
/// Not cancel-safe in the sense that a tap may already be queued when the future is dropped;
/// callers race it against shutdown only.
pub async fn submit_tap(taps: &mpsc::Sender<TapRequest>, read: CardRead) -> Result<Feedback, ReaderError> {
    let (reply, verdict) = oneshot::channel();
    taps.send(TapRequest { read, reply }).await.map_err(|_| ReaderError::Closed)?;
    Ok(verdict.await.unwrap_or(Feedback::Error))
}
