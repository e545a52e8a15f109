//! IMAP polling (async-imap on tokio, rustls). (Skeleton; being written.)

use crate::config::{ImapAccount, Limits};

/// Where a mail goes after its batch is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `archive_folder`: everything that was stored and is not invalid.
    Archive,
    /// `invalid_folder`: could not be read, or over a cap.
    Invalid,
}

/// One mailbox as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRef {
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: u32,
}

/// One fetched message.
#[derive(Debug, Clone)]
pub struct FetchedMail {
    pub uid: u32,
    pub bytes: Vec<u8>,
}

/// Errors the sink (the store side) reports; they stop the account's run.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// What the poller hands mails to. Implemented by the ingest pipeline.
pub trait MailSink {
    /// Of `uids`, the ones already in the store, with where each belongs.
    fn stored(
        &mut self,
        mb: &MailboxRef,
        uids: &[u32],
    ) -> Result<Vec<(u32, Destination)>, SinkError>;
    /// Store a batch durably and say where each mail goes. Nothing is moved
    /// before this returns.
    fn store(
        &mut self,
        mb: &MailboxRef,
        mails: Vec<FetchedMail>,
    ) -> Result<Vec<(u32, Destination)>, SinkError>;
    /// Record a mail too large to fetch, from its header bytes; it goes to Invalid.
    fn oversize(
        &mut self,
        mb: &MailboxRef,
        uid: u32,
        size: u64,
        header: Vec<u8>,
    ) -> Result<(), SinkError>;
}

/// Errors polling one account.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Anything.
    #[error("{0}")]
    Other(String),
}

/// Counts from polling one account.
#[derive(Debug, Clone, Default)]
pub struct PollStats {
    pub messages: usize,
    pub moved_archive: usize,
    pub moved_invalid: usize,
}

/// Poll one account once: fetch new mail in batches, hand each batch to the
/// sink, then move what was committed.
pub async fn poll(
    account: &ImapAccount,
    _limits: &Limits,
    _sink: &mut dyn MailSink,
) -> Result<PollStats, FetchError> {
    Err(FetchError::Other(format!(
        "account {}: IMAP not implemented yet",
        account.name
    )))
}
