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
    /// Set when the input was larger than allowed: `bytes` then holds only
    /// its header, and this says why.
    pub truncated: Option<String>,
}

impl RawInput {
    /// A whole input.
    pub fn new(origin: Origin, name: Option<String>, bytes: Vec<u8>) -> RawInput {
        RawInput {
            origin,
            name,
            bytes,
            truncated: None,
        }
    }

    /// An input over `max` bytes (`setting` names the cap): keep its header only.
    pub fn oversize(
        origin: Origin,
        name: Option<String>,
        mut head: Vec<u8>,
        size: u64,
        setting: &str,
        max: u64,
    ) -> RawInput {
        head.truncate(header_len(&head).min(usize::try_from(max).unwrap_or(usize::MAX)));
        let kept = head.len();
        RawInput {
            origin,
            name,
            bytes: head,
            truncated: Some(format!(
                "input is {size} bytes, over {setting} {max}; only its first {kept} bytes (the header) were kept"
            )),
        }
    }
}

/// How much of a too-large input to keep: its header block, at most 64 KiB.
pub fn header_len(bytes: &[u8]) -> usize {
    const MAX: usize = 64 << 10;
    let window = &bytes[..bytes.len().min(MAX)];
    window
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i + 2)
        .or_else(|| {
            window
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| i + 4)
        })
        .unwrap_or(window.len())
}
