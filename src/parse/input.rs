//! The byte source under the XML tokenizer.
//!
//! [`Input`] wraps the caller's reader and
//! 1. sniffs the encoding once from the first bytes (BOM, UTF-16 without BOM,
//!    or the `encoding` pseudo-attribute of the XML declaration),
//! 2. decodes everything to UTF-8 with `encoding_rs`, replacing invalid
//!    sequences with U+FFFD (quick-xml rejects invalid UTF-8, so this is what
//!    makes such input readable at all), and
//! 3. enforces a byte budget per XML event: the parser resets
//!    [`Input::budget`] before every event and, once it is spent, the input
//!    looks like end of file and [`Input::exhausted`] is set. quick-xml buffers
//!    whole events, so this is what keeps a 500 MB text node out of memory.

use encoding_rs::{CoderResult, Decoder, Encoding, REPLACEMENT, UTF_16BE, UTF_16LE, UTF_8};
use std::io::{self, BufRead, Read};

/// How many bytes are looked at to find the declared encoding.
const SNIFF_LEN: usize = 1024;
/// Size of the decoded-output buffer.
const OUT_LEN: usize = 64 * 1024;

pub(crate) struct Input<R> {
    inner: R,
    sniffed: bool,
    /// Bytes read from `inner` while sniffing, not yet decoded.
    prefix: Vec<u8>,
    prefix_pos: usize,
    decoder: Option<Decoder>,
    encoding: &'static Encoding,
    out: Vec<u8>,
    start: usize,
    end: usize,
    finished: bool,
    /// Bytes the current XML event may still consume.
    pub(crate) budget: usize,
    /// Set when a read was refused because the budget was spent.
    pub(crate) exhausted: bool,
    /// Set once the decoder replaced a malformed sequence with U+FFFD.
    pub(crate) replaced: bool,
    /// Oddities found while sniffing, for the report's warnings.
    pub(crate) notes: Vec<String>,
}

impl<R: BufRead> Input<R> {
    pub(crate) fn new(inner: R) -> Self {
        Input {
            inner,
            sniffed: false,
            prefix: Vec::new(),
            prefix_pos: 0,
            decoder: None,
            encoding: UTF_8,
            out: vec![0; OUT_LEN],
            start: 0,
            end: 0,
            finished: false,
            budget: usize::MAX,
            exhausted: false,
            replaced: false,
            notes: Vec::new(),
        }
    }

    /// The encoding the document is decoded from.
    pub(crate) fn encoding(&self) -> &'static Encoding {
        self.encoding
    }

    fn sniff(&mut self) -> io::Result<()> {
        while self.prefix.len() < SNIFF_LEN {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(SNIFF_LEN - self.prefix.len());
            self.prefix
                .extend_from_slice(buf.get(..n).unwrap_or_default());
            self.inner.consume(n);
        }
        self.sniffed = true;
        let (enc, skip) = detect(&self.prefix, &mut self.notes);
        self.encoding = enc;
        self.prefix_pos = skip;
        self.decoder = Some(enc.new_decoder_without_bom_handling());
        Ok(())
    }

    /// Decode the next chunk into `out`. Leaves `start == end` only at the end.
    fn refill(&mut self) -> io::Result<()> {
        if !self.sniffed {
            self.sniff()?;
        }
        self.start = 0;
        self.end = 0;
        while self.end == 0 && !self.finished {
            let Some(dec) = self.decoder.as_mut() else {
                self.finished = true;
                break;
            };
            let from_prefix = self.prefix_pos < self.prefix.len();
            let src: &[u8] = if from_prefix {
                self.prefix.get(self.prefix_pos..).unwrap_or_default()
            } else {
                self.inner.fill_buf()?
            };
            let last = src.is_empty();
            let (res, read, written, replaced) = dec.decode_to_utf8(src, &mut self.out, last);
            if from_prefix {
                self.prefix_pos += read;
                if self.prefix_pos >= self.prefix.len() {
                    self.prefix = Vec::new();
                    self.prefix_pos = 0;
                }
            } else {
                self.inner.consume(read);
            }
            self.replaced |= replaced;
            self.end = written;
            if last && res == CoderResult::InputEmpty {
                self.finished = true;
            } else if read == 0 && written == 0 && !last {
                return Err(io::Error::other("character decoder made no progress"));
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Input<R> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(dst.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), avail.get(..n)) {
            d.copy_from_slice(s);
        }
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Input<R> {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start >= self.end && !self.finished {
            self.refill()?;
        }
        let avail = self.end.saturating_sub(self.start);
        if avail > 0 && self.budget == 0 {
            self.exhausted = true;
            return Ok(&[]);
        }
        let n = avail.min(self.budget);
        Ok(self.out.get(self.start..self.start + n).unwrap_or_default())
    }

    #[inline]
    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.end.saturating_sub(self.start));
        self.start += amt;
        self.budget = self.budget.saturating_sub(amt);
    }
}

/// The encoding to decode with, and how many leading bytes (a BOM) to skip.
fn detect(p: &[u8], notes: &mut Vec<String>) -> (&'static Encoding, usize) {
    if let Some((enc, bom)) = Encoding::for_bom(p) {
        return (enc, bom);
    }
    if p.starts_with(&[0x3C, 0, 0x3F, 0]) {
        return (UTF_16LE, 0);
    }
    if p.starts_with(&[0, 0x3C, 0, 0x3F]) {
        return (UTF_16BE, 0);
    }
    let Some(label) = declared_encoding(p) else {
        return (UTF_8, 0);
    };
    match Encoding::for_label(label) {
        // The declaration was readable as ASCII, so the bytes are not UTF-16.
        Some(e) if e == UTF_16LE || e == UTF_16BE => {
            notes.push(format!(
                "declared encoding '{}' does not match the bytes; read as UTF-8",
                String::from_utf8_lossy(label)
            ));
            (UTF_8, 0)
        }
        Some(e) if e != REPLACEMENT => (e, 0),
        _ => {
            notes.push(format!(
                "unknown encoding '{}' declared; read as UTF-8",
                super::clip(&String::from_utf8_lossy(label))
            ));
            (UTF_8, 0)
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `encoding` pseudo-attribute of a leading `<?xml ...?>`, if any.
/// Whitespace before the declaration is tolerated.
fn declared_encoding(p: &[u8]) -> Option<&[u8]> {
    let rest = trim(p);
    let rest = rest.strip_prefix(b"<?xml")?;
    let end = find(rest, b"?>")?;
    let decl = rest.get(..end)?;
    let i = find(decl, b"encoding")?;
    let r = trim(decl.get(i + b"encoding".len()..)?);
    let r = trim(r.strip_prefix(b"=")?);
    let (&q, r) = r.split_first()?;
    if q != b'"' && q != b'\'' {
        return None;
    }
    let close = r.iter().position(|&b| b == q)?;
    Some(trim(r.get(..close)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> (String, Input<&[u8]>) {
        let mut input = Input::new(bytes);
        let mut s = String::new();
        input.read_to_string(&mut s).unwrap();
        (s, input)
    }

    #[test]
    fn declared_encodings() {
        assert_eq!(
            declared_encoding(b"\n <?xml version='1.0' encoding = 'ISO-8859-1' ?>"),
            Some(&b"ISO-8859-1"[..])
        );
        assert_eq!(declared_encoding(b"<?xml version=\"1.0\"?>"), None);
        assert_eq!(declared_encoding(b"<feedback>"), None);
        assert_eq!(declared_encoding(b"<?xml encoding=\"utf-8"), None);
    }

    #[test]
    fn windows_1252_is_decoded() {
        let (s, input) = decode_all(
            b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><a>Caf\xe9 \x93q\x94</a>",
        );
        assert!(s.ends_with("<a>Caf\u{e9} \u{201c}q\u{201d}</a>"), "{s}");
        assert_eq!(input.encoding(), encoding_rs::WINDOWS_1252);
        assert!(!input.replaced);
    }

    #[test]
    fn utf8_bom_is_stripped_and_invalid_bytes_replaced() {
        let (s, input) = decode_all(b"\xEF\xBB\xBF<a>x\x91y</a>");
        assert_eq!(s, "<a>x\u{FFFD}y</a>");
        assert!(input.replaced);
    }

    #[test]
    fn utf16_with_and_without_bom() {
        let text = "<?xml version=\"1.0\"?><a>\u{e9}</a>";
        let le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let (s, _) = decode_all(&le);
        assert_eq!(s, text);
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
        let (s, _) = decode_all(&be);
        assert_eq!(s, text);
    }

    #[test]
    fn bogus_labels_fall_back_to_utf8() {
        let (s, input) = decode_all(b"<?xml version='1.0' encoding='UTF-16'?><a>\xc3\xa9</a>");
        assert!(s.ends_with("<a>\u{e9}</a>"));
        assert_eq!(input.notes.len(), 1);
        let (_, input) = decode_all(b"<?xml version='1.0' encoding='klingon'?><a/>");
        assert!(input.notes[0].contains("klingon"), "{:?}", input.notes);
    }

    #[test]
    fn budget_cuts_the_stream() {
        let mut input = Input::new(&b"0123456789"[..]);
        input.budget = 4;
        let mut got = Vec::new();
        loop {
            let b = input.fill_buf().unwrap();
            if b.is_empty() {
                break;
            }
            let n = b.len();
            got.extend_from_slice(b);
            input.consume(n);
        }
        assert_eq!(got, b"0123");
        assert!(input.exhausted);
    }

    #[test]
    fn large_input_crosses_buffers() {
        let mut doc = Vec::from(&b"<?xml version='1.0' encoding='latin1'?><a>"[..]);
        doc.extend(std::iter::repeat_n(0xe9u8, 3 * OUT_LEN + 7));
        doc.extend_from_slice(b"</a>");
        let (s, _) = decode_all(&doc);
        assert_eq!(
            s.chars().filter(|&c| c == '\u{e9}').count(),
            3 * OUT_LEN + 7
        );
        assert!(s.ends_with("</a>"));
    }
}
