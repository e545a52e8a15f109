//! Local inputs: files, directories (recursively), mbox files and stdin.
//!
//! A file is one input, except an mbox (a file that starts with a `From `
//! line), which is one input per message. Files are recognised by their bytes
//! later, in extract; here only the name is kept as a hint.

use super::{Origin, RawInput};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// A path that could not be read. The run goes on without it.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct LocalError {
    pub path: String,
    pub source: std::io::Error,
}

/// What the walk skips below a directory: mail-server bookkeeping files and
/// the database itself (a directory may hold both).
#[derive(Debug, Clone, Default)]
pub struct Skip {
    /// Files with these paths (the database and its -wal/-shm files).
    pub paths: Vec<PathBuf>,
}

const SETTING: &str = "max_input_bytes";

/// Call `f` with every input below `paths` (`-` is stdin), in order. An input
/// over `max_bytes` is handed on with its header only (see
/// [`RawInput::oversize`]). Unreadable paths go to `on_error`; the walk goes
/// on. Errors from `f` stop the walk.
pub fn visit<E>(
    paths: &[PathBuf],
    max_bytes: u64,
    skip: &Skip,
    on_error: &mut dyn FnMut(LocalError),
    f: &mut dyn FnMut(RawInput) -> Result<(), E>,
) -> Result<(), E> {
    let walker = Walker {
        max_bytes,
        skip: skip
            .paths
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect(),
    };
    for p in paths {
        if p.as_os_str() == "-" {
            match read_capped(std::io::stdin().lock(), max_bytes, 0) {
                Ok((bytes, None)) => f(RawInput::new(Origin::Stdin, None, bytes))?,
                Ok((head, Some(size))) => f(RawInput::oversize(
                    Origin::Stdin,
                    None,
                    head,
                    size,
                    SETTING,
                    max_bytes,
                ))?,
                Err(source) => on_error(LocalError {
                    path: "<stdin>".into(),
                    source,
                }),
            }
        } else {
            walker.walk(p, true, on_error, f)?;
        }
    }
    Ok(())
}

/// Read at most `max` bytes; past that, keep the first 64 KiB and count the rest.
/// `hint`: the size the input is expected to have (a file's length), so
/// that the buffer is allocated once instead of doubling its way there.
fn read_capped<R: Read>(mut r: R, max: u64, hint: u64) -> std::io::Result<(Vec<u8>, Option<u64>)> {
    let mut bytes = Vec::with_capacity(usize::try_from(hint.min(max)).unwrap_or(0));
    (&mut r)
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 <= max {
        return Ok((bytes, None));
    }
    let rest = std::io::copy(&mut r, &mut std::io::sink())?;
    let size = bytes.len() as u64 + rest;
    bytes.truncate(64 << 10);
    Ok((bytes, Some(size)))
}

/// Files a mail server keeps beside the mails in a Maildir: not inputs.
fn is_bookkeeping(name: &str) -> bool {
    name.starts_with("dovecot")
        || matches!(name, "maildirfolder" | "subscriptions" | "courierimapuiddb")
        || name.starts_with("courierimap")
}

struct Walker {
    max_bytes: u64,
    /// `Skip::paths` that exist, resolved once.
    skip: Vec<PathBuf>,
}

impl Walker {
    fn walk<E>(
        &self,
        path: &Path,
        given: bool,
        on_error: &mut dyn FnMut(LocalError),
        f: &mut dyn FnMut(RawInput) -> Result<(), E>,
    ) -> Result<(), E> {
        let err = |source| LocalError {
            path: path.display().to_string(),
            source,
        };
        // Symlinked directories are not followed below the given paths, so a loop
        // cannot make the walk endless.
        let meta = if given {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        };
        let meta = match meta {
            Ok(m) => m,
            Err(e) => {
                on_error(err(e));
                return Ok(());
            }
        };
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => {
                    on_error(err(e));
                    return Ok(());
                }
            };
            entries.sort();
            for e in entries {
                self.walk(&e, false, on_error, f)?;
            }
            return Ok(());
        }
        if meta.file_type().is_symlink() {
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Ok(()),
                Err(e) => {
                    on_error(err(e));
                    return Ok(());
                }
            }
        } else if !meta.is_file() {
            if given {
                on_error(err(std::io::Error::other(
                    "not a regular file or directory",
                )));
            }
            return Ok(());
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !given && (name.starts_with('.') || is_bookkeeping(name) || self.is_skipped(path)) {
            return Ok(());
        }
        match read_file(path, self.max_bytes, f) {
            Ok(r) => r,
            Err(e) => {
                on_error(err(e));
                Ok(())
            }
        }
    }
}

impl Walker {
    /// Resolves the path only when its name matches a skipped file's, so a
    /// large directory costs no extra system call per file.
    fn is_skipped(&self, path: &Path) -> bool {
        let name = path.file_name();
        self.skip.iter().any(|s| s.file_name() == name)
            && std::fs::canonicalize(path).is_ok_and(|c| self.skip.contains(&c))
    }
}

/// Read one file: a single input, or an mbox split into its messages.
fn read_file<E>(
    path: &Path,
    max_bytes: u64,
    f: &mut dyn FnMut(RawInput) -> Result<(), E>,
) -> std::io::Result<Result<(), E>> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let display = path.display().to_string();
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    if !reader.fill_buf()?.starts_with(b"From ") {
        let origin = Origin::Path {
            path: display,
            mbox_index: None,
        };
        if size > max_bytes {
            // Known too large: read only what is kept.
            let mut head = Vec::new();
            (&mut reader).take(64 << 10).read_to_end(&mut head)?;
            return Ok(f(RawInput::oversize(
                origin, name, head, size, SETTING, max_bytes,
            )));
        }
        return Ok(match read_capped(reader, max_bytes, size)? {
            (bytes, None) => f(RawInput::new(origin, name, bytes)),
            (head, Some(size)) => f(RawInput::oversize(
                origin, name, head, size, SETTING, max_bytes,
            )),
        });
    }
    let mut mbox = MboxReader::new(reader);
    mbox.cap = max_bytes;
    // One message held back, so that a file with a single `From ` line is
    // recorded as a plain file rather than "message 1".
    let mut pending: Option<(Vec<u8>, u64)> = None;
    let mut index = 0usize;
    while let Some(msg) = mbox.next_message()? {
        if let Some((prev, size)) = pending.replace((msg, mbox.last_size)) {
            index += 1;
            let origin = Origin::Path {
                path: display.clone(),
                mbox_index: Some(index),
            };
            if let Err(e) = f(capped(origin, None, prev, size, max_bytes)) {
                return Ok(Err(e));
            }
        }
    }
    if let Some((last, size)) = pending {
        let mbox_index = (index > 0).then_some(index + 1);
        let origin = Origin::Path {
            path: display,
            mbox_index,
        };
        let name = if index > 0 { None } else { name };
        return Ok(f(capped(origin, name, last, size, max_bytes)));
    }
    Ok(Ok(()))
}

/// Splits an mbox stream into messages: a message starts at a `From ` line at
/// the start of the file or after a blank line. The `From ` line is dropped and
/// mboxrd quoting (`>From ` → `From `) undone.
pub struct MboxReader<R: BufRead> {
    inner: R,
    line: Vec<u8>,
    started: bool,
    /// Message bytes kept: a longer message is cut (and `last_size` says
    /// how long it was), so a huge one never sits in memory.
    pub cap: u64,
    /// The size of the message `next_message` returned last.
    pub last_size: u64,
}

/// Lines are read in pieces of at most this: a line of gigabytes must not
/// sit in memory either.
const LINE_PIECE: u64 = 1 << 20;

impl<R: BufRead> MboxReader<R> {
    /// Read messages from `inner`.
    pub fn new(inner: R) -> Self {
        MboxReader {
            inner,
            line: Vec::new(),
            started: false,
            cap: u64::MAX,
            last_size: 0,
        }
    }

    /// The next message (at most `cap` bytes of it, `last_size` its whole
    /// size), or `None` at the end.
    pub fn next_message(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut msg = Vec::new();
        let mut size = 0u64;
        let cap = self.cap;
        // Count every byte, keep at most cap + 1 (so "over the cap" shows).
        let keep = |msg: &mut Vec<u8>, size: &mut u64, piece: &[u8]| {
            *size += piece.len() as u64;
            let room = cap.saturating_add(1).saturating_sub(msg.len() as u64);
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(piece.len());
            msg.extend_from_slice(piece.get(..n).unwrap_or_default());
        };
        if !self.started {
            self.started = true;
            self.line.clear();
            if self.read_piece()? == 0 {
                return Ok(None);
            }
            if !self.line.starts_with(b"From ") {
                // Not an mbox after all: the whole stream is one message.
                loop {
                    keep(&mut msg, &mut size, &self.line);
                    self.line.clear();
                    if self.read_piece()? == 0 {
                        break;
                    }
                }
                self.last_size = size;
                return Ok(Some(msg));
            }
            self.skip_rest_of_line()?;
        } else if self.line.is_empty() {
            return Ok(None);
        }
        let mut prev_blank = false;
        let mut at_line_start = true;
        loop {
            self.line.clear();
            if self.read_piece()? == 0 {
                break;
            }
            let starts = at_line_start;
            at_line_start = self.line.ends_with(b"\n");
            if starts
                && ((prev_blank && self.line.starts_with(b"From ")) || is_separator(&self.line))
            {
                // The blank line before the separator belongs to the mbox.
                trim_one_newline(&mut msg);
                size = size.saturating_sub(if prev_blank { 1 } else { 0 });
                self.skip_rest_of_line()?;
                self.last_size = size;
                return Ok(Some(msg));
            }
            prev_blank = starts && (self.line == b"\n" || self.line == b"\r\n");
            let quoted = self.line.iter().take_while(|&&b| b == b'>').count();
            if starts
                && quoted > 0
                && self
                    .line
                    .get(quoted..)
                    .is_some_and(|l| l.starts_with(b"From "))
            {
                let unquoted = self.line.get(1..).unwrap_or_default().to_vec();
                keep(&mut msg, &mut size, &unquoted);
            } else {
                keep(&mut msg, &mut size, &self.line);
            }
        }
        self.line.clear();
        self.last_size = size;
        Ok(Some(msg))
    }

    /// Read the next piece of a line (to its end or [`LINE_PIECE`] bytes).
    fn read_piece(&mut self) -> std::io::Result<usize> {
        (&mut self.inner)
            .take(LINE_PIECE)
            .read_until(b'\n', &mut self.line)
    }

    /// After a separator line read in part: the rest of it.
    fn skip_rest_of_line(&mut self) -> std::io::Result<()> {
        while !self.line.ends_with(b"\n") {
            self.line.clear();
            if self.read_piece()? == 0 {
                break;
            }
        }
        // `line` must not be empty: that marks the end.
        if self.line.is_empty() {
            self.line.push(b'\n');
        }
        Ok(())
    }
}

/// An mbox message as an input, or its header when it is over the cap.
fn capped(origin: Origin, name: Option<String>, bytes: Vec<u8>, size: u64, max: u64) -> RawInput {
    if size > max {
        RawInput::oversize(origin, name, bytes, size, SETTING, max)
    } else {
        RawInput::new(origin, name, bytes)
    }
}

/// A `From ` line that starts a message even without a blank line before it:
/// `From <sender> <weekday> ...`, as mbox writers put it.
fn is_separator(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let (Some(_sender), Some(day)) = (words.next(), words.next()) else {
        return false;
    };
    [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"]
        .iter()
        .any(|d| day == &d[..])
}

fn trim_one_newline(msg: &mut Vec<u8>) {
    if msg.ends_with(b"\r\n") {
        msg.truncate(msg.len() - 2);
    } else if msg.ends_with(b"\n") {
        msg.truncate(msg.len() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        let mut r = MboxReader::new(text.as_bytes());
        let mut out = vec![];
        while let Some(m) = r.next_message().unwrap() {
            out.push(String::from_utf8(m).unwrap());
        }
        out
    }

    #[test]
    fn mbox_split_and_unquote() {
        let mb = "From a@example.com Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n>From here\n\nFrom b@example.org Tue Jan  2 00:00:00 2024\nSubject: two\n\ntext\nFrom inside a paragraph is not a separator\n";
        let msgs = split(mb);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], "Subject: one\n\nbody\nFrom here\n");
        assert!(msgs[1].starts_with("Subject: two"));
        assert!(msgs[1].contains("From inside"));
        assert_eq!(
            split("Subject: x\n\nplain\n"),
            vec!["Subject: x\n\nplain\n"]
        );
        assert!(split("").is_empty());
    }

    #[test]
    fn mbox_messages_over_the_cap_are_cut_but_measured() {
        let long = "a".repeat(3 << 20); // one line longer than LINE_PIECE
        let mb = format!(
            "From a@example.com Mon Jan  1 00:00:00 2024\nSubject: big\n\n{long}\n\n\
             From b@example.org Tue Jan  2 00:00:00 2024\nSubject: small\n\nbody\n"
        );
        let mut r = MboxReader::new(mb.as_bytes());
        r.cap = 100;
        let big = r.next_message().unwrap().unwrap();
        assert_eq!(big.len(), 101);
        assert!(big.starts_with(b"Subject: big\n\naaa"));
        assert_eq!(
            r.last_size,
            (long.len() + "Subject: big\n\n\n".len()) as u64
        );
        let small = r.next_message().unwrap().unwrap();
        assert_eq!(small, b"Subject: small\n\nbody\n");
        assert_eq!(r.last_size, small.len() as u64);
        assert!(r.next_message().unwrap().is_none());
    }

    #[test]
    fn walk_reports_missing_paths_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.xml"), "<feedback/>").unwrap();
        std::fs::write(dir.path().join("a.eml"), "Subject: x\n\nhi\n").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let mut errors = vec![];
        let mut seen = vec![];
        std::fs::write(dir.path().join("dovecot-uidlist"), "x").unwrap();
        std::fs::write(dir.path().join("db.sqlite"), "x").unwrap();
        let skip = Skip {
            paths: vec![dir.path().join("db.sqlite")],
        };
        visit::<()>(
            &[dir.path().join("missing"), dir.path().to_path_buf()],
            1 << 20,
            &skip,
            &mut |e| errors.push(e.to_string()),
            &mut |i| {
                seen.push(i.origin.to_string());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("missing"));
        assert_eq!(seen.len(), 2);
        assert!(seen[0].ends_with("a.eml") && seen[1].ends_with("b.xml"));
    }
}
