//! The report model: plain data, independent of the database schema.
//!
//! Enumerated values (dispositions, results, alignment modes) are kept as
//! trimmed, lowercased text so that unknown values a reporter invents
//! (`hardfail`, `softfail` as a disposition) survive unchanged.

use serde::Serialize;

/// Which schema a report follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 7489 Appendix C (namespace `http://dmarc.org/dmarc-xml/0.1` or none).
    Rfc7489,
    /// RFC 9990 (`urn:ietf:params:xml:ns:dmarc-2.0`, or its new fields).
    Rfc9990,
    /// The pre-RFC draft shape (no `<version>`, older field set).
    Draft,
}

impl Format {
    /// The name stored in `reports.format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Rfc7489 => "rfc7489",
            Format::Rfc9990 => "rfc9990",
            Format::Draft => "draft",
        }
    }
}

/// Everything in a report except its records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    pub format: Format,
    pub version: Option<String>,
    pub org_name: Option<String>,
    pub email: Option<String>,
    pub extra_contact_info: Option<String>,
    /// As sent, trimmed; angle brackets are kept here and stripped for the key.
    pub report_id: String,
    /// Unix seconds, UTC.
    pub begin: i64,
    /// Unix seconds, UTC.
    pub end: i64,
    pub errors: Vec<String>,
    pub generator: Option<String>,
    pub policy: Policy,
}

/// `policy_published`: the DMARC record the reporter found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Policy {
    pub domain: String,
    pub adkim: Option<String>,
    pub aspf: Option<String>,
    pub p: Option<String>,
    pub sp: Option<String>,
    pub np: Option<String>,
    pub pct: Option<i64>,
    pub fo: Option<String>,
    pub testing: Option<String>,
    pub discovery_method: Option<String>,
}

/// One `<record>`: a source IP and what the receiver saw from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Record {
    /// Normalised text form (see [`normalize_ip`]); the raw text when it is not an address.
    pub source_ip: String,
    /// The parsed address when `source_ip` is one.
    pub ip: Option<std::net::IpAddr>,
    pub count: i64,
    pub disposition: Option<String>,
    /// Aligned DKIM result from `policy_evaluated`.
    pub dkim: Option<String>,
    /// Aligned SPF result from `policy_evaluated`.
    pub spf: Option<String>,
    pub reasons: Vec<Reason>,
    pub header_from: Option<String>,
    pub envelope_from: Option<String>,
    pub envelope_to: Option<String>,
    pub dkim_results: Vec<DkimResult>,
    pub spf_results: Vec<SpfResult>,
}

/// A policy override reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reason {
    pub kind: Option<String>,
    pub comment: Option<String>,
}

/// One DKIM signature's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DkimResult {
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub result: Option<String>,
    pub human_result: Option<String>,
}

/// One SPF check's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpfResult {
    pub domain: Option<String>,
    pub scope: Option<String>,
    pub result: Option<String>,
    pub human_result: Option<String>,
}

impl Header {
    /// The normalised reporter: org_name trimmed and lowercased, or the domain
    /// of `email` when org_name is empty.
    pub fn reporter(&self) -> String {
        let org = self.org_name.as_deref().map(str::trim).unwrap_or("");
        if !org.is_empty() {
            return org.to_lowercase();
        }
        let email = self.email.as_deref().map(str::trim).unwrap_or("");
        email
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or(email)
            .trim_end_matches('>')
            .to_lowercase()
    }

    /// The report id as used in the duplicate key: trimmed, without angle brackets.
    pub fn report_id_key(&self) -> &str {
        let id = self.report_id.trim();
        id.strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(id)
            .trim()
    }
}

/// Normalise an address: lowercase, compressed IPv6, IPv4-mapped IPv6 as IPv4.
/// Returns `None` when the text is not an IP address.
pub fn normalize_ip(text: &str) -> Option<std::net::IpAddr> {
    use std::net::IpAddr;
    let t = text.trim().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = t.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    })
}

/// The 16-byte form stored in `records.source_ip_bin`: IPv4 as IPv4-mapped IPv6,
/// so that one `BETWEEN` covers both families.
pub fn ip_bin(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_normal_forms() {
        assert_eq!(
            normalize_ip("2001:0DB8:0:0:0:0:0:1").unwrap().to_string(),
            "2001:db8::1"
        );
        assert_eq!(
            normalize_ip("::ffff:192.0.2.7").unwrap().to_string(),
            "192.0.2.7"
        );
        assert_eq!(
            normalize_ip(" 198.51.100.1 ").unwrap().to_string(),
            "198.51.100.1"
        );
        assert!(normalize_ip("not-an-ip").is_none());
        let bin = ip_bin(normalize_ip("192.0.2.1").unwrap());
        assert_eq!(&bin[10..], &[0xff, 0xff, 192, 0, 2, 1]);
    }

    #[test]
    fn reporter_falls_back_to_email_domain() {
        let mut h = Header {
            format: Format::Rfc7489,
            version: None,
            org_name: Some("  Example.COM ".into()),
            email: Some("noreply@reports.example.org".into()),
            extra_contact_info: None,
            report_id: " <abc@example.org> ".into(),
            begin: 0,
            end: 1,
            errors: vec![],
            generator: None,
            policy: Policy::default(),
        };
        assert_eq!(h.reporter(), "example.com");
        assert_eq!(h.report_id_key(), "abc@example.org");
        h.org_name = Some(" ".into());
        assert_eq!(h.reporter(), "reports.example.org");
    }
}
