//! Synthetic aggregate reports for tests and benchmarks, documentation
//! addresses only.
//!
//! - [`SyntheticReport`] (with [`head`] and [`record`]): one report of any
//!   number of identical-shaped records, produced on the fly so that even a
//!   million records are never held in memory.
//! - The corpus generator behind the hidden `dmarcdb generate` and
//!   `benches/speed.rs`: [`ReportPlan`] is one report with the variety of a
//!   real report mailbox (five reporters, four policy domains, RFC 7489 and
//!   RFC 9990 shapes, IPv4 and IPv6 sources, passing and failing results,
//!   one to three DKIM signatures, xml / xml.gz / zip / mail wrappings,
//!   file names after the reporters' convention); [`write_corpus`] writes
//!   many, [`write_big`] streams one huge `.xml.gz`. Everything follows
//!   from a seed through a hand-written PRNG ([`Rng`]): the same seed gives
//!   byte-identical files, and no clock is read.

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

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

// ---------------------------------------------------------------------------
// The corpus generator (`dmarcdb generate`, `benches/speed.rs`): reports with
// the variety of a real report mailbox, deterministic from a seed.
// ---------------------------------------------------------------------------

/// A small deterministic PRNG (splitmix64). The same seed gives the same
/// sequence on every platform and in every version of this crate's
/// dependencies.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The seed of item `i` of a run seeded with `seed`: items are independent
/// of each other (report 7 is the same whether 10 or 10,000 are written).
fn derive(seed: u64, i: u64) -> u64 {
    Rng::new(seed ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// Which aggregate report schema a report follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// RFC 7489 Appendix C, no namespace (what most reporters send).
    Rfc7489,
    /// RFC 9990, in the `urn:ietf:params:xml:ns:dmarc-2.0` namespace.
    Rfc9990,
}

/// How one generated report is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// A bare `.xml` file.
    Xml,
    /// `.xml.gz`.
    Gz,
    /// `.zip` with one `.xml` entry.
    Zip,
    /// A mail (`.eml`) with the reporter's usual attachment (zip or gz).
    Eml,
}

impl Wrapping {
    /// Its name: `xml`, `gz`, `zip`, `eml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Wrapping::Xml => "xml",
            Wrapping::Gz => "gz",
            Wrapping::Zip => "zip",
            Wrapping::Eml => "eml",
        }
    }
}

/// The wrapping of every report of a corpus, or a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappingChoice {
    /// Per report: mostly the reporter's usual attachment (zip or xml.gz),
    /// some as mail, a few as bare XML.
    Mixed,
    /// Every report wrapped the same way.
    All(Wrapping),
}

/// A reporter: shaped like a big receiver, with documentation domains.
#[derive(Debug)]
struct Reporter {
    org_name: &'static str,
    email: &'static str,
    /// The receiver part of file names and the Submitter of the subject.
    receiver: &'static str,
    extra_contact_info: Option<&'static str>,
    shape: Shape,
    /// Zip or Gz: what it attaches.
    native: Wrapping,
}

const REPORTERS: [Reporter; 5] = [
    Reporter {
        org_name: "mail.example.org",
        email: "noreply-dmarc-support@mail.example.org",
        receiver: "mail.example.org",
        extra_contact_info: Some("https://support.mail.example.org/a/answer/2466580"),
        shape: Shape::Rfc7489,
        native: Wrapping::Zip,
    },
    Reporter {
        org_name: "Enterprise Outlook",
        email: "dmarcreport@outlook.example.net",
        receiver: "protection.outlook.example.net",
        extra_contact_info: None,
        shape: Shape::Rfc7489,
        native: Wrapping::Gz,
    },
    Reporter {
        org_name: "Yahoo",
        email: "dmarchelp@yahoo.example.net",
        receiver: "yahoo.example.net",
        extra_contact_info: None,
        shape: Shape::Rfc7489,
        native: Wrapping::Gz,
    },
    Reporter {
        org_name: "GMX",
        email: "noreply-dmarc@gmx.example.net",
        receiver: "gmx.example.net",
        extra_contact_info: Some("https://postmaster.gmx.example.net"),
        shape: Shape::Rfc9990,
        native: Wrapping::Gz,
    },
    Reporter {
        org_name: "Telekom",
        email: "dmarc-noreply@telekom.example.org",
        receiver: "telekom.example.org",
        extra_contact_info: None,
        shape: Shape::Rfc9990,
        native: Wrapping::Gz,
    },
];

/// A policy domain and its published record.
#[derive(Debug)]
struct Domain {
    name: &'static str,
    p: &'static str,
    sp: &'static str,
    adkim: &'static str,
}

const DOMAINS: [Domain; 4] = [
    Domain {
        name: "example.com",
        p: "reject",
        sp: "reject",
        adkim: "r",
    },
    Domain {
        name: "example.net",
        p: "quarantine",
        sp: "none",
        adkim: "r",
    },
    Domain {
        name: "example.org",
        p: "none",
        sp: "none",
        adkim: "s",
    },
    Domain {
        name: "shop.example.com",
        p: "reject",
        sp: "quarantine",
        adkim: "r",
    },
];

/// Third parties that send (and sign) for the policy domains.
const ESPS: [&str; 4] = [
    "esp.example.net",
    "mailer.example.org",
    "bulk.example.net",
    "crm.example.org",
];
const SELECTORS: [&str; 7] = [
    "s1",
    "s2",
    "k1",
    "selector1",
    "selector2",
    "mta",
    "20230601",
];
/// DKIM results of a sender that is not the domain's, and of extra signatures.
const SPOOF_DKIM: [&str; 6] = ["fail", "none", "permerror", "temperror", "neutral", "pass"];
const EXTRA_DKIM: [&str; 5] = ["pass", "pass", "pass", "fail", "temperror"];
const V4_PREFIXES: [&str; 3] = ["192.0.2", "198.51.100", "203.0.113"];

/// The first day of generated reports: 2026-01-01 00:00:00 UTC.
const FIRST_DAY: i64 = 1_767_225_600;

/// One generated report: who sent it, about what and when, and how it is
/// wrapped. Its records come from its own seed.
#[derive(Debug, Clone)]
pub struct ReportPlan {
    /// Its number in the corpus.
    pub index: u64,
    reporter: &'static Reporter,
    domain: &'static Domain,
    /// `report_id`, unique in the corpus.
    pub report_id: String,
    /// Start of the reporting period (one UTC day).
    pub begin: i64,
    /// End of the reporting period.
    pub end: i64,
    /// How it is wrapped.
    pub wrapping: Wrapping,
    /// Letters and digits, unique in the corpus (file names, MIME boundary).
    unique: String,
    record_seed: u64,
}

impl ReportPlan {
    /// Report `index` of a corpus seeded with `seed`. Reporter and policy
    /// domain go round in turn and the day advances after each round, so
    /// no two reports share a file name or a report key.
    pub fn new(seed: u64, index: u64, wrapping: WrappingChoice) -> ReportPlan {
        let mut rng = Rng::new(derive(seed, index));
        let reporter = &REPORTERS[(index % REPORTERS.len() as u64) as usize];
        let domain = &DOMAINS[((index / REPORTERS.len() as u64) % DOMAINS.len() as u64) as usize];
        let day = (index / (REPORTERS.len() * DOMAINS.len()) as u64) as i64;
        let begin = FIRST_DAY + day * 86_400;
        let end = begin + 86_399;
        let unique = format!("{index:06}{:08x}", rng.next_u64() as u32);
        let report_id = match reporter.org_name {
            "mail.example.org" => {
                format!("{}{index:07}", 10_000_000_000 + rng.below(90_000_000_000))
            }
            "Enterprise Outlook" => format!(
                "{:016x}{:08x}{index:08x}",
                rng.next_u64(),
                rng.next_u64() as u32
            ),
            "Yahoo" => format!("{begin}.{index}{:04}", rng.below(10_000)),
            "GMX" => {
                let a = rng.next_u64();
                format!(
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{index:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xfff,
                    0x8000 | (rng.next_u64() & 0x3fff)
                )
            }
            _ => format!("{begin}.{index}-{}@{}", domain.name, reporter.receiver),
        };
        let wrapping = match wrapping {
            WrappingChoice::All(w) => w,
            WrappingChoice::Mixed => match rng.below(100) {
                0..=14 => Wrapping::Xml,
                15..=39 => Wrapping::Eml,
                _ => reporter.native,
            },
        };
        ReportPlan {
            index,
            reporter,
            domain,
            report_id,
            begin,
            end,
            wrapping,
            unique,
            record_seed: rng.next_u64(),
        }
    }

    /// Which schema it follows.
    pub fn shape(&self) -> Shape {
        self.reporter.shape
    }

    /// The report's name without extension, after the reporters' convention
    /// `receiver!policy-domain!begin!end[!unique-id]` (RFC 9990 reporters
    /// add the unique id).
    fn base_name(&self) -> String {
        let mut name = format!(
            "{}!{}!{}!{}",
            self.reporter.receiver, self.domain.name, self.begin, self.end
        );
        if self.reporter.shape == Shape::Rfc9990 {
            name.push('!');
            name.push_str(&self.unique);
        }
        name
    }

    /// The name of the file [`ReportPlan::file_bytes`] makes.
    pub fn file_name(&self) -> String {
        let ext = match self.wrapping {
            Wrapping::Xml => "xml",
            Wrapping::Gz => "xml.gz",
            Wrapping::Zip => "zip",
            Wrapping::Eml => "eml",
        };
        format!("{}.{ext}", self.base_name())
    }

    /// Write the report's XML with `records` records to `w`, one record at
    /// a time (a million records are never held in memory).
    pub fn write_xml<W: Write + ?Sized>(&self, records: u64, w: &mut W) -> io::Result<()> {
        let mut buf = String::with_capacity(64 * 1024);
        self.head(&mut buf);
        let mut rng = Rng::new(self.record_seed);
        for _ in 0..records {
            self.record(&mut rng, &mut buf);
            if buf.len() >= 60 * 1024 {
                w.write_all(buf.as_bytes())?;
                buf.clear();
            }
        }
        buf.push_str("</feedback>\n");
        w.write_all(buf.as_bytes())
    }

    /// The report's XML in memory.
    pub fn xml(&self, records: u64) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_xml(records, &mut out);
        out
    }

    /// The file as written into a corpus: XML, gzip, zip or mail.
    pub fn file_bytes(&self, records: u64) -> io::Result<Vec<u8>> {
        match self.wrapping {
            Wrapping::Xml => Ok(self.xml(records)),
            Wrapping::Gz => self.gz(records),
            Wrapping::Zip => self.zip(records),
            Wrapping::Eml => self.mail(records),
        }
    }

    /// The report gzipped, as reporters do (default level, no time stamp).
    fn gz(&self, records: u64) -> io::Result<Vec<u8>> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        self.write_xml(records, &mut gz)?;
        gz.finish()
    }

    /// The report as a zip with one entry, dated at the end of its period.
    fn zip(&self, records: u64) -> io::Result<Vec<u8>> {
        let date = chrono::DateTime::from_timestamp(self.end, 0).unwrap_or_default();
        use chrono::{Datelike, Timelike};
        let stamp = zip::DateTime::from_date_and_time(
            date.year() as u16,
            date.month() as u8,
            date.day() as u8,
            date.hour() as u8,
            date.minute() as u8,
            date.second() as u8,
        )
        .unwrap_or_default();
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(stamp);
        let mut z = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        z.start_file(format!("{}.xml", self.base_name()), opts)
            .map_err(io::Error::other)?;
        self.write_xml(records, &mut z)?;
        Ok(z.finish().map_err(io::Error::other)?.into_inner())
    }

    /// The report as a report mail (RFC 5322, CRLF): a short text part and
    /// the reporter's usual attachment in base64, dated an hour after the
    /// period ends.
    pub fn mail(&self, records: u64) -> io::Result<Vec<u8>> {
        let r = self.reporter;
        let (attachment, name, ctype) = match r.native {
            Wrapping::Zip => (
                self.zip(records)?,
                format!("{}.zip", self.base_name()),
                "application/zip",
            ),
            _ => (
                self.gz(records)?,
                format!("{}.xml.gz", self.base_name()),
                "application/gzip",
            ),
        };
        let date =
            chrono::DateTime::from_timestamp(self.end + 3601 + (self.index % 3000) as i64, 0)
                .unwrap_or_default()
                .to_rfc2822();
        let id = match r.shape {
            Shape::Rfc7489 => format!(" Report-ID: <{}>", self.report_id),
            Shape::Rfc9990 => format!(" Report-ID: {}", self.report_id),
        };
        let boundary = format!("----=_Part_{}", self.unique);
        let mut m = format!(
            "Return-Path: <{email}>\r\nFrom: {org} <{email}>\r\nTo: dmarc-reports@{domain}\r\n\
             Subject: Report Domain: {domain} Submitter: {recv}{id}\r\nDate: {date}\r\n\
             Message-ID: <{unique}.{idx}@{recv}>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
             This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n\
             Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
             This is an aggregate report from {org} for {domain}.\r\n\r\n--{boundary}\r\n\
             Content-Type: {ctype}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n",
            email = r.email,
            org = r.org_name,
            domain = self.domain.name,
            recv = r.receiver,
            unique = self.unique,
            idx = self.index,
        );
        base64_lines(&attachment, &mut m);
        m.push_str(&format!("\r\n--{boundary}--\r\n"));
        Ok(m.into_bytes())
    }

    fn head(&self, out: &mut String) {
        use std::fmt::Write as _;
        let (r, d) = (self.reporter, self.domain);
        let mut rng = Rng::new(self.record_seed ^ 0x5EED);
        match r.shape {
            Shape::Rfc7489 => out.push_str(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<feedback>\n  <version>1.0</version>\n",
            ),
            Shape::Rfc9990 => out.push_str(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">\n  <version>1.0</version>\n",
            ),
        }
        let _ = write!(
            out,
            "  <report_metadata>\n    <org_name>{}</org_name>\n    <email>{}</email>\n",
            r.org_name, r.email
        );
        if let Some(info) = r.extra_contact_info {
            let _ = writeln!(out, "    <extra_contact_info>{info}</extra_contact_info>");
        }
        let _ = write!(
            out,
            "    <report_id>{}</report_id>\n    <date_range>\n      <begin>{}</begin>\n      <end>{}</end>\n    </date_range>\n",
            self.report_id, self.begin, self.end
        );
        if r.shape == Shape::Rfc9990 {
            let _ = writeln!(
                out,
                "    <generator>{} reporter 2.{}</generator>",
                r.org_name,
                rng.below(4)
            );
        }
        let _ = write!(
            out,
            "  </report_metadata>\n  <policy_published>\n    <domain>{}</domain>\n",
            d.name
        );
        match r.shape {
            Shape::Rfc7489 => {
                let _ = write!(
                    out,
                    "    <adkim>{}</adkim>\n    <aspf>r</aspf>\n    <p>{}</p>\n    <sp>{}</sp>\n    <pct>100</pct>\n",
                    d.adkim, d.p, d.sp
                );
                if rng.chance(50) {
                    out.push_str("    <fo>0</fo>\n");
                }
            }
            Shape::Rfc9990 => {
                let _ = write!(
                    out,
                    "    <p>{}</p>\n    <sp>{}</sp>\n    <np>{}</np>\n    <adkim>{}</adkim>\n    <aspf>r</aspf>\n    <discovery_method>{}</discovery_method>\n    <fo>0</fo>\n    <testing>n</testing>\n",
                    d.p,
                    d.sp,
                    d.p,
                    d.adkim,
                    if rng.chance(70) { "treewalk" } else { "psl" }
                );
            }
        }
        out.push_str("  </policy_published>\n");
    }

    /// One record: a source, what it did and how the receiver judged it.
    fn record(&self, rng: &mut Rng, out: &mut String) {
        use std::fmt::Write as _;
        let shape = self.reporter.shape;
        let domain = self.domain.name;
        let ip = if rng.chance(30) {
            format!(
                "2001:db8:{:x}::{:x}",
                rng.below(0x1_0000),
                1 + rng.below(0xffff)
            )
        } else {
            format!("{}.{}", rng.pick(&V4_PREFIXES), 1 + rng.below(254))
        };
        let count = match rng.below(100) {
            0..=54 => 1,
            55..=79 => 2 + rng.below(9),
            80..=94 => 11 + rng.below(490),
            _ => 501 + rng.below(19_500),
        };
        let header_from = if rng.chance(10) {
            format!("news.{domain}")
        } else {
            domain.to_string()
        };
        let esp = rng.pick(&ESPS);
        // What kind of sender this is decides the results.
        struct Sig {
            domain: String,
            result: &'static str,
        }
        let mut sigs: Vec<Sig> = Vec::new();
        let (aligned_dkim, aligned_spf, spf_domain, spf_result, reason);
        match rng.below(100) {
            // The domain's own servers: everything passes.
            0..=54 => {
                sigs.push(Sig {
                    domain: header_from.clone(),
                    result: "pass",
                });
                (aligned_dkim, aligned_spf) = (true, true);
                spf_domain = format!("bounce.{domain}");
                spf_result = "pass";
                reason = None;
            }
            // A service provider signing for the domain, its own bounce domain.
            55..=69 => {
                sigs.push(Sig {
                    domain: header_from.clone(),
                    result: "pass",
                });
                sigs.push(Sig {
                    domain: esp.to_string(),
                    result: "pass",
                });
                (aligned_dkim, aligned_spf) = (true, false);
                spf_domain = esp.to_string();
                spf_result = "pass";
                reason = None;
            }
            // Forwarded: SPF breaks, the signature may survive.
            70..=79 => {
                let survived = rng.chance(60);
                sigs.push(Sig {
                    domain: header_from.clone(),
                    result: if survived { "pass" } else { "fail" },
                });
                (aligned_dkim, aligned_spf) = (survived, false);
                spf_domain = domain.to_string();
                spf_result = rng.pick(&["fail", "softfail", "neutral"]);
                reason = (!survived).then(|| match shape {
                    Shape::Rfc7489 => rng.pick(&["forwarded", "mailing_list", "local_policy"]),
                    Shape::Rfc9990 => {
                        rng.pick(&["trusted_forwarder", "mailing_list", "local_policy"])
                    }
                });
            }
            // Spoofing or a misconfigured sender: nothing aligns.
            _ => {
                let d = if rng.chance(50) {
                    header_from.clone()
                } else {
                    esp.to_string()
                };
                sigs.push(Sig {
                    domain: d,
                    result: rng.pick(&SPOOF_DKIM),
                });
                if sigs.first().is_some_and(|s| s.result == "pass") {
                    // Passing, but for another domain: not aligned.
                    if let Some(s) = sigs.first_mut() {
                        s.domain = esp.to_string();
                    }
                }
                (aligned_dkim, aligned_spf) = (false, false);
                spf_domain = if rng.chance(50) {
                    domain.to_string()
                } else {
                    format!("{}.example.net", rng.pick(&["mx", "relay", "smtp"]))
                };
                spf_result = rng.pick(&[
                    "fail",
                    "softfail",
                    "none",
                    "neutral",
                    "permerror",
                    "temperror",
                ]);
                reason = rng.chance(10).then_some(if shape == Shape::Rfc7489 {
                    "local_policy"
                } else {
                    "policy_test_mode"
                });
            }
        }
        // One to three signatures.
        for _ in 0..rng.below(3) {
            if sigs.len() >= 3 {
                break;
            }
            sigs.push(Sig {
                domain: rng.pick(&ESPS).to_string(),
                result: rng.pick(&EXTRA_DKIM),
            });
        }
        let passes = aligned_dkim || aligned_spf;
        let disposition = if passes || reason.is_some() {
            if shape == Shape::Rfc9990 && passes && self.domain.p != "none" && rng.chance(50) {
                "pass"
            } else {
                "none"
            }
        } else {
            self.domain.p
        };
        let pf = |b: bool| if b { "pass" } else { "fail" };
        let _ = write!(
            out,
            "  <record>\n    <row>\n      <source_ip>{ip}</source_ip>\n      <count>{count}</count>\n      <policy_evaluated>\n        <disposition>{disposition}</disposition>\n        <dkim>{}</dkim>\n        <spf>{}</spf>\n",
            pf(aligned_dkim),
            pf(aligned_spf)
        );
        if let Some(kind) = reason {
            let _ = writeln!(
                out,
                "        <reason>\n          <type>{kind}</type>\n        </reason>"
            );
        }
        out.push_str("      </policy_evaluated>\n    </row>\n    <identifiers>\n");
        if shape == Shape::Rfc9990 && rng.chance(20) {
            let _ = writeln!(
                out,
                "      <envelope_to>{}</envelope_to>",
                self.reporter.receiver
            );
        }
        match (shape, rng.below(100)) {
            (_, 0..=4) => {}
            (Shape::Rfc9990, 5..=9) => out.push_str("      <envelope_from></envelope_from>\n"),
            _ => {
                let _ = writeln!(out, "      <envelope_from>{spf_domain}</envelope_from>");
            }
        }
        let _ = write!(
            out,
            "      <header_from>{header_from}</header_from>\n    </identifiers>\n    <auth_results>\n"
        );
        for s in &sigs {
            let _ = write!(out, "      <dkim>\n        <domain>{}</domain>\n", s.domain);
            if shape == Shape::Rfc9990 || rng.chance(90) {
                let _ = writeln!(out, "        <selector>{}</selector>", rng.pick(&SELECTORS));
            }
            let _ = writeln!(out, "        <result>{}</result>", s.result);
            if rng.chance(5) {
                out.push_str(
                    "        <human_result>signature verification failed</human_result>\n",
                );
            }
            out.push_str("      </dkim>\n");
        }
        if shape == Shape::Rfc7489 || rng.chance(95) {
            let _ = write!(out, "      <spf>\n        <domain>{spf_domain}</domain>\n");
            if shape == Shape::Rfc7489 || rng.chance(70) {
                out.push_str("        <scope>mfrom</scope>\n");
            }
            let _ = write!(out, "        <result>{spf_result}</result>\n      </spf>\n");
        }
        if shape == Shape::Rfc7489 && rng.chance(10) {
            let _ = write!(
                out,
                "      <spf>\n        <domain>{}</domain>\n        <scope>helo</scope>\n        <result>pass</result>\n      </spf>\n",
                self.reporter.receiver
            );
        }
        out.push_str("    </auth_results>\n  </record>\n");
    }
}

/// Base64 in lines of 76 characters, each ended by CRLF.
fn base64_lines(bytes: &[u8], out: &mut String) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for line in bytes.chunks(57) {
        for c in line.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                if k <= c.len() {
                    out.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out.push_str("\r\n");
    }
}

/// What to generate: `reports` reports of `records` records each.
#[derive(Debug, Clone)]
pub struct CorpusSpec {
    pub seed: u64,
    pub reports: u64,
    pub records: u64,
    pub wrapping: WrappingChoice,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    /// Files written (one report each).
    pub files: u64,
    pub reports: u64,
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Bytes of XML inside them (uncompressed).
    pub xml_bytes: u64,
    /// Files by wrapping.
    pub xml: u64,
    pub gz: u64,
    pub zip: u64,
    pub eml: u64,
}

impl Written {
    fn count(&mut self, w: Wrapping, records: u64, bytes: u64, xml_bytes: u64) {
        self.files += 1;
        self.reports += 1;
        self.records += records;
        self.bytes += bytes;
        self.xml_bytes += xml_bytes;
        match w {
            Wrapping::Xml => self.xml += 1,
            Wrapping::Gz => self.gz += 1,
            Wrapping::Zip => self.zip += 1,
            Wrapping::Eml => self.eml += 1,
        }
    }
}

/// The reports of a corpus, in order.
pub fn plans(spec: &CorpusSpec) -> impl Iterator<Item = ReportPlan> + '_ {
    (0..spec.reports).map(|i| ReportPlan::new(spec.seed, i, spec.wrapping))
}

/// Write a corpus into `dir` (which must exist), one file per report.
pub fn write_corpus(dir: &Path, spec: &CorpusSpec) -> io::Result<Written> {
    let mut w = Written::default();
    for plan in plans(spec) {
        let bytes = plan.file_bytes(spec.records)?;
        let xml_bytes = match plan.wrapping {
            Wrapping::Xml => bytes.len() as u64,
            _ => plan.xml(spec.records).len() as u64,
        };
        std::fs::write(dir.join(plan.file_name()), &bytes)?;
        w.count(plan.wrapping, spec.records, bytes.len() as u64, xml_bytes);
    }
    Ok(w)
}

/// Counts what passes through.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The report [`write_big`] writes.
pub fn big_plan(seed: u64) -> ReportPlan {
    // Far past any corpus index, so that a big report and a corpus from the
    // same seed can share a store; an Outlook-shaped .xml.gz.
    // (Outlook's report ids do not name the day; the period is the first day.)
    let mut plan = ReportPlan::new(seed, 1_000_000_001, WrappingChoice::All(Wrapping::Gz));
    (plan.begin, plan.end) = (FIRST_DAY, FIRST_DAY + 86_399);
    plan
}

/// Write one `.xml.gz` report with `records` records into `dir`, streamed
/// through gzip (never in memory). Its path and what was written.
pub fn write_big(dir: &Path, seed: u64, records: u64) -> io::Result<(PathBuf, Written)> {
    let plan = big_plan(seed);
    let path = dir.join(plan.file_name());
    let file = io::BufWriter::new(std::fs::File::create(&path)?);
    let mut xml = Counting {
        inner: flate2::write::GzEncoder::new(file, flate2::Compression::default()),
        n: 0,
    };
    plan.write_xml(records, &mut xml)?;
    xml.inner.finish()?.flush()?;
    let mut w = Written::default();
    let bytes = std::fs::metadata(&path)?.len();
    w.count(Wrapping::Gz, records, bytes, xml.n);
    Ok((path, w))
}
