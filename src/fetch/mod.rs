//! Fetch: where inputs come from. IMAP mailboxes ([`imap`]) and local files,
//! directories, mbox files and stdin ([`local`]). The only module that does
//! network IO.

pub mod imap;
pub mod local;

/// Where one input came from; recorded with it in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A plain file, or one message of an mbox file (`index` counts from 1).
    Path {
        path: String,
        mbox_index: Option<usize>,
    },
    /// Standard input.
    Stdin,
    /// One IMAP message.
    Imap {
        account: String,
        mailbox: String,
        uidvalidity: u32,
        uid: u32,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Path {
                path,
                mbox_index: None,
            } => write!(f, "{path}"),
            Origin::Path {
                path,
                mbox_index: Some(i),
            } => write!(f, "{path} (message {i})"),
            Origin::Stdin => write!(f, "<stdin>"),
            Origin::Imap {
                account,
                mailbox,
                uid,
                ..
            } => write!(f, "imap {account}/{mailbox} UID {uid}"),
        }
    }
}

/// One input as received.
#[derive(Debug, Clone)]
pub struct RawInput {
    pub origin: Origin,
    /// A name hint for recognising the content (a file name), if any.
    pub name: Option<String>,
    pub bytes: Vec<u8>,
}
