//! Synthetic aggregate reports for tests and benchmarks: a report of any
//! number of records, produced on the fly so that even a million records are
//! never held in memory. Documentation addresses only.

use std::io::{self, BufRead, Read, Write};

/// The XML declaration, metadata and policy of a synthetic report.
pub fn head(report_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <version>1.0</version>\n  <report_metadata>\n    <org_name>synthetic.example.org</org_name>\n    <email>dmarc@synthetic.example.org</email>\n    <report_id>{report_id}</report_id>\n    <date_range>\n      <begin>1700000000</begin>\n      <end>1700086399</end>\n    </date_range>\n  </report_metadata>\n  <policy_published>\n    <domain>example.com</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>none</p>\n    <sp>none</sp>\n    <pct>100</pct>\n    <fo>0</fo>\n  </policy_published>\n"
    )
}

/// Record `i` (about 820 bytes, shaped like a large provider's): every third
/// source is IPv6, `count` is `i % 7 + 1`, two DKIM signatures and one SPF check.
pub fn record(i: u64, out: &mut Vec<u8>) {
    let ip = if i.is_multiple_of(3) {
        format!("2001:db8::{:x}", i % 65536)
    } else {
        format!("198.51.100.{}", i % 256)
    };
    let _ = write!(
        out,
        "  <record>\n    <row>\n      <source_ip>{ip}</source_ip>\n      <count>{}</count>\n      <policy_evaluated>\n        <disposition>none</disposition>\n        <dkim>pass</dkim>\n        <spf>fail</spf>\n      </policy_evaluated>\n    </row>\n    <identifiers>\n      <envelope_from>bounce.example.com</envelope_from>\n      <header_from>example.com</header_from>\n    </identifiers>\n    <auth_results>\n      <dkim>\n        <domain>example.com</domain>\n        <selector>s{}</selector>\n        <result>pass</result>\n      </dkim>\n      <dkim>\n        <domain>esp.example.net</domain>\n        <selector>esp</selector>\n        <result>fail</result>\n      </dkim>\n      <spf>\n        <domain>bounce.example.com</domain>\n        <scope>mfrom</scope>\n        <result>softfail</result>\n      </spf>\n    </auth_results>\n  </record>\n",
        i % 7 + 1,
        i % 10
    );
}

/// A whole report of `n` records as a reader.
pub struct SyntheticReport {
    head: String,
    n: u64,
    i: u64,
    chunk: Vec<u8>,
    pos: usize,
    stage: u8,
}

impl SyntheticReport {
    /// A report with this id and `n` records.
    pub fn new(report_id: &str, n: u64) -> Self {
        SyntheticReport {
            head: head(report_id),
            n,
            i: 0,
            chunk: Vec::new(),
            pos: 0,
            stage: 0,
        }
    }
}

impl Read for SyntheticReport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for SyntheticReport {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.chunk.len() {
            self.chunk.clear();
            self.pos = 0;
            match self.stage {
                0 => {
                    self.chunk.extend_from_slice(self.head.as_bytes());
                    self.stage = 1;
                }
                1 if self.i < self.n => {
                    while self.i < self.n && self.chunk.len() < 64 * 1024 {
                        record(self.i, &mut self.chunk);
                        self.i += 1;
                    }
                }
                1 => {
                    self.chunk.extend_from_slice(b"</feedback>\n");
                    self.stage = 2;
                }
                _ => return Ok(&[]),
            }
        }
        Ok(self.chunk.get(self.pos..).unwrap_or_default())
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}
