//! Deduplicated, bounded warnings.
//!
//! Each warning has a key (a kind plus optional detail such as an element
//! name). The first warning of a key is kept as written; repeats only bump a
//! counter shown as "(and N more like it)". The number of distinct warnings is
//! capped so that memory stays flat however many records are odd.

use std::collections::HashMap;
use std::fmt::Write as _;

/// Distinct warnings kept; further distinct ones are only counted.
const MAX_DISTINCT: usize = 200;

struct Seen {
    idx: usize,
    base_len: usize,
    more: u64,
}

#[derive(Default)]
pub(crate) struct Warnings {
    list: Vec<String>,
    seen: HashMap<String, Seen>,
    scratch: String,
    suppressed: u64,
    suppressed_idx: Option<usize>,
}

impl Warnings {
    pub(crate) fn as_slice(&self) -> &[String] {
        &self.list
    }

    /// Record a warning under `kind` + `detail`; `msg` is only called the
    /// first time that key is seen.
    pub(crate) fn add(&mut self, kind: &str, detail: &str, msg: impl FnOnce() -> String) {
        self.scratch.clear();
        self.scratch.push_str(kind);
        self.scratch.push('\0');
        self.scratch.push_str(detail);
        if let Some(seen) = self.seen.get_mut(self.scratch.as_str()) {
            seen.more += 1;
            if let Some(s) = self.list.get_mut(seen.idx) {
                s.truncate(seen.base_len);
                let _ = write!(s, " (and {} more like it)", seen.more);
            }
            return;
        }
        if self.seen.len() >= MAX_DISTINCT {
            self.suppressed += 1;
            let line = format!("{} further distinct warnings suppressed", self.suppressed);
            match self.suppressed_idx.and_then(|i| self.list.get_mut(i)) {
                Some(s) => *s = line,
                None => {
                    self.suppressed_idx = Some(self.list.len());
                    self.list.push(line);
                }
            }
            return;
        }
        let text = one_line(msg());
        self.seen.insert(
            self.scratch.clone(),
            Seen {
                idx: self.list.len(),
                base_len: text.len(),
                more: 0,
            },
        );
        self.list.push(text);
    }
}

fn one_line(s: String) -> String {
    if s.contains(['\n', '\r']) {
        s.replace(['\n', '\r'], " ")
    } else {
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn dedupes_and_counts() {
        let mut w = Warnings::default();
        for i in 1..=3 {
            w.add("count", "", || {
                format!("non-numeric count 'x' in record {i}")
            });
        }
        w.add("unknown", "foo", || "unknown element <foo>".into());
        assert_eq!(
            w.as_slice(),
            [
                "non-numeric count 'x' in record 1 (and 2 more like it)",
                "unknown element <foo>"
            ]
        );
    }

    #[test]
    fn distinct_warnings_are_capped() {
        let mut w = Warnings::default();
        for i in 0..(MAX_DISTINCT + 50) {
            w.add("unknown", &i.to_string(), || format!("w{i}"));
        }
        assert_eq!(w.as_slice().len(), MAX_DISTINCT + 1);
        assert_eq!(
            w.as_slice().last().unwrap(),
            "50 further distinct warnings suppressed"
        );
    }
}
