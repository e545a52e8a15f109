//! Fixture tests: concrete values per fixture, malformed inputs, limits,
//! truncation/mutation robustness, and the shared real-world corpus.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/reports")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn parse(name: &str) -> (Header, Vec<Record>, Vec<String>) {
    parse_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn total(records: &[Record]) -> i64 {
    records.iter().map(|r| r.count).sum()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn has_warning(w: &[String], needle: &str) -> bool {
    w.iter().any(|x| x.contains(needle))
}

#[test]
fn rfc7489_plain() {
    let (h, recs, w) = parse("rfc7489-plain.xml");
    assert_eq!(h.format, Format::Rfc7489);
    assert_eq!(h.version, s("1.0"));
    assert_eq!(h.org_name, s("mail.example.org"));
    assert_eq!(h.email, s("dmarc-reports@example.org"));
    assert_eq!(h.extra_contact_info, s("https://example.org/dmarc-help"));
    assert_eq!(h.report_id, "rfc7489-plain-0001");
    assert_eq!((h.begin, h.end), (1700006400, 1700092799));
    assert!(h.errors.is_empty());
    assert_eq!(
        h.policy,
        Policy {
            domain: "example.com".into(),
            adkim: s("r"),
            aspf: s("s"),
            p: s("quarantine"),
            sp: s("reject"),
            np: None,
            pct: Some(50),
            fo: s("1"),
            testing: None,
            discovery_method: None,
        }
    );
    assert_eq!(recs.len(), 3);
    assert_eq!(total(&recs), 16);
    let r = &recs[0];
    assert_eq!(r.source_ip, "192.0.2.10");
    assert_eq!(r.ip, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(r.count, 12);
    assert_eq!(
        (
            r.disposition.as_deref(),
            r.dkim.as_deref(),
            r.spf.as_deref()
        ),
        (Some("none"), Some("pass"), Some("pass"))
    );
    assert_eq!(r.envelope_to, s("example.net"));
    assert_eq!(r.envelope_from, s("bounce.example.com"));
    assert_eq!(r.header_from, s("example.com"));
    assert_eq!(
        r.dkim_results,
        vec![
            DkimResult {
                domain: s("example.com"),
                selector: s("s2023"),
                result: s("pass"),
                human_result: s("good signature"),
            },
            DkimResult {
                domain: s("esp.example.net"),
                selector: s("esp1"),
                result: s("fail"),
                human_result: None,
            },
        ]
    );
    assert_eq!(r.spf_results.len(), 2);
    assert_eq!(r.spf_results[1].scope, s("helo"));
    assert_eq!(
        recs[1].reasons,
        vec![
            Reason {
                kind: s("forwarded"),
                comment: s("looks like a forwarder"),
            },
            Reason {
                kind: s("local_policy"),
                comment: None,
            },
        ]
    );
    assert_eq!(recs[1].spf_results[0].result, s("softfail"));
    assert_eq!(recs[2].disposition, s("reject"));
    assert_eq!(recs[2].envelope_from, None);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn draft_without_version() {
    let (h, recs, w) = parse("draft-no-version.xml");
    assert_eq!(h.format, Format::Draft);
    assert_eq!(h.version, None);
    assert_eq!(h.org_name, s("example.net"));
    assert_eq!(h.report_id, "9391651994964116463");
    assert_eq!(h.policy.domain, "example.com");
    assert_eq!((h.begin, h.end), (1335571200, 1335657599));
    assert_eq!(h.policy.pct, Some(100));
    assert_eq!(h.policy.fo, None);
    assert_eq!(recs.len(), 1);
    assert_eq!(total(&recs), 2);
    assert_eq!(recs[0].envelope_from, None);
    assert_eq!(recs[0].dkim_results[0].human_result, None);
    assert_eq!(recs[0].dkim_results[0].selector, None);
    assert_eq!(recs[0].spf_results[0].scope, None);
    assert_eq!(recs[0].spf_results[0].result, s("pass"));
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn rfc9990_full() {
    let (h, recs, w) = parse("rfc9990-full.xml");
    assert_eq!(h.format, Format::Rfc9990);
    assert_eq!(h.version, s("1.0"));
    assert_eq!(h.org_name, s("Reporter Example"));
    assert_eq!(h.report_id, "1700000000-example.com@reporter.example.org");
    assert_eq!((h.begin, h.end), (1700000000, 1700086399));
    assert_eq!(h.generator, s("Example Aggregate Reporter 2.1"));
    assert_eq!(
        h.errors,
        vec!["Policy lookup for sub.example.com timed out once."]
    );
    assert_eq!(
        h.extra_contact_info,
        s("https://reporter.example.org/dmarc")
    );
    let p = &h.policy;
    assert_eq!(p.domain, "example.com");
    assert_eq!(p.discovery_method, s("treewalk"));
    assert_eq!(p.np, s("reject"));
    assert_eq!(p.testing, s("y"));
    assert_eq!(p.fo, s("0:d"));
    assert_eq!(p.pct, None);
    assert_eq!(recs.len(), 2);
    assert_eq!(total(&recs), 42, "vnd:count must not override count");
    let r = &recs[0];
    assert_eq!(r.source_ip, "2001:db8::25");
    assert_eq!(r.disposition, s("pass"));
    assert_eq!(r.envelope_from, None);
    assert_eq!(r.envelope_to, s("example.net"));
    assert_eq!(r.dkim_results[0].human_result, s("signature verified"));
    assert_eq!(r.spf_results[0].result, s("policy"));
    assert_eq!(r.spf_results[0].human_result, s("Richtlinie"));
    assert_eq!(
        recs[1].reasons,
        vec![Reason {
            kind: s("policy_test_mode"),
            comment: s("t=y in effect"),
        }]
    );
    assert_eq!(recs[1].dkim_results[0].result, s("permerror"));
    assert!(recs[1].spf_results.is_empty());
    assert!(w.is_empty(), "extensions are skipped silently: {w:?}");
}

#[test]
fn prefixed_namespace() {
    let (h, recs, w) = parse("prefixed-namespace.xml");
    assert_eq!(h.format, Format::Rfc9990);
    assert_eq!(h.org_name, s("example.net"));
    assert_eq!(h.report_id, "prefixed-42");
    assert_eq!(h.policy.domain, "example.org");
    assert_eq!((h.begin, h.end), (1700100000, 1700186399));
    assert_eq!(recs.len(), 1);
    assert_eq!(total(&recs), 5, "x:count is a foreign extension");
    assert_eq!(recs[0].source_ip, "198.51.100.9");
    assert_eq!(recs[0].dkim_results[0].selector, s("a"));
    assert_eq!(recs[0].spf_results[0].result, s("pass"));
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn windows_1252() {
    let (h, recs, w) = parse("windows-1252.xml");
    assert_eq!(h.org_name, s("Exämple Überwachung \u{201c}GmbH\u{201d}"));
    assert_eq!(h.report_id, "cp1252-0007");
    assert_eq!(h.policy.domain, "example.com");
    assert_eq!((h.begin, h.end), (1700200000, 1700286399));
    assert_eq!(recs.len(), 1);
    assert_eq!(total(&recs), 4);
    assert_eq!(
        recs[0].reasons[0].comment,
        s("Weiterleitung über Verteiler \u{2013} ok")
    );
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn iso_8859_1_single_quoted_standalone() {
    let (h, recs, w) = parse("iso-8859-1-single-quoted.xml");
    assert_eq!(h.org_name, s("Exämple Überwachung \"GmbH\""));
    assert_eq!(h.report_id, "latin1-0008");
    assert_eq!(
        recs[0].reasons[0].comment,
        s("Weiterleitung über Verteiler - ok")
    );
    assert_eq!(total(&recs), 4);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn bom_and_leading_whitespace() {
    let (h, recs, w) = parse("bom-leading-whitespace.xml");
    assert_eq!(h.org_name, s("bom.example.org"));
    assert_eq!(h.report_id, "bom-1");
    assert_eq!(h.policy.domain, "example.com");
    assert_eq!(h.policy.p, s("reject"));
    assert_eq!((h.begin, h.end), (1700300000, 1700386399));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].source_ip, "203.0.113.1");
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn no_declaration_crlf() {
    let (h, recs, w) = parse("no-declaration-crlf.xml");
    assert_eq!(h.org_name, s("nodecl.example.net"));
    assert_eq!(h.report_id, "nodecl-9");
    assert_eq!(h.policy.domain, "example.org");
    assert_eq!((h.begin, h.end), (1700400000, 1700486399));
    assert_eq!(recs.len(), 1);
    assert_eq!(total(&recs), 6);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn utf16_with_bom() {
    let (h, recs, w) = parse("utf-16le-bom.xml");
    assert_eq!(h.org_name, s("utf16.example.net"));
    assert_eq!(h.report_id, "utf16-1");
    assert_eq!(h.policy.domain, "example.org");
    assert_eq!(total(&recs), 6);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn invalid_utf8_is_replaced() {
    let (h, recs, w) = parse("invalid-utf8.xml");
    assert_eq!(h.report_id, "badutf8-1");
    assert_eq!(recs[0].header_from, s("\u{FFFD}example.org\u{FFFD}"));
    assert!(has_warning(&w, "invalid UTF-8"), "{w:?}");
}

#[test]
fn mixed_case_and_unknown_enums() {
    let (h, recs, w) = parse("mixed-case-enums.xml");
    assert_eq!(h.org_name, s("Example.NET"));
    assert_eq!(h.report_id, "case-77");
    assert_eq!(h.policy.adkim, s("r"));
    assert_eq!(h.policy.aspf, s("s"));
    assert_eq!(h.policy.p, s("reject"));
    assert_eq!(h.policy.sp, s("quarantine"));
    assert_eq!(recs.len(), 1);
    assert_eq!(total(&recs), 1);
    let r = &recs[0];
    assert_eq!(r.disposition, s("softfail"));
    assert_eq!(r.dkim, s("pass"));
    assert_eq!(r.spf, s("fail"));
    assert_eq!(r.reasons[0].kind, s("trusted_forwarder"));
    assert_eq!(r.dkim_results[0].result, s("temperror"));
    let spf: Vec<_> = r
        .spf_results
        .iter()
        .map(|x| (x.scope.as_deref().unwrap(), x.result.as_deref().unwrap()))
        .collect();
    assert_eq!(
        spf,
        [
            ("mfrom", "hardfail"),
            ("helo", "unknown"),
            ("mfrom", "error"),
            ("mfrom", "softfail")
        ]
    );
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn untrimmed_values() {
    let (h, recs, w) = parse("untrimmed.xml");
    assert_eq!(h.version, s("1.0"));
    assert_eq!(h.org_name, s("untrimmed.example.org"));
    assert_eq!(h.email, s("dmarc@untrimmed.example.org"));
    assert_eq!(h.report_id, "<id-with-brackets@example.org>");
    assert_eq!(h.report_id_key(), "id-with-brackets@example.org");
    assert_eq!((h.begin, h.end), (1559520000, 1559606399));
    assert_eq!(h.policy.domain, "example.com");
    assert_eq!(h.policy.adkim, s("r"));
    assert_eq!(h.policy.p, s("reject"));
    assert_eq!(h.policy.sp, s("none"));
    assert_eq!(h.policy.pct, Some(100));
    assert_eq!(h.policy.fo, s("0"));
    let r = &recs[0];
    assert_eq!(r.source_ip, "192.0.2.43");
    assert_eq!(r.count, 7);
    assert_eq!(r.disposition, s("reject"));
    assert_eq!(r.header_from, s("example.com"));
    assert_eq!(r.spf_results[0].domain, s("example.com"));
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn empty_and_missing_optional_elements() {
    let (h, recs, w) = parse("empty-optional.xml");
    assert_eq!(h.org_name, None);
    assert_eq!(h.email, s("only-email@example.org"));
    assert_eq!(h.reporter(), "example.org");
    assert_eq!(h.extra_contact_info, None);
    assert_eq!(h.report_id, "empty-opt-3");
    assert_eq!((h.begin, h.end), (1700600000, 1700686399));
    assert_eq!(h.policy.sp, None);
    assert_eq!(h.policy.np, None);
    assert_eq!(h.policy.fo, None);
    assert_eq!(h.policy.adkim, None);
    assert_eq!(h.policy.pct, None);
    assert_eq!(recs.len(), 2);
    assert_eq!(total(&recs), 2);
    let r = &recs[0];
    assert_eq!(
        r.reasons,
        vec![
            Reason::default(),
            Reason {
                kind: s("sampled_out"),
                comment: None,
            },
            Reason {
                kind: s("other"),
                comment: None,
            },
        ]
    );
    assert_eq!(r.envelope_from, None);
    assert!(r.dkim_results.is_empty() && r.spf_results.is_empty());
    let r = &recs[1];
    assert_eq!(r.source_ip, "");
    assert_eq!(r.ip, None);
    assert_eq!(r.count, 0);
    assert_eq!((&r.disposition, &r.dkim, &r.spf), (&None, &None, &None));
    assert_eq!(r.header_from, None);
    assert!(
        r.dkim_results.is_empty(),
        "self-closing <dkim/> carries nothing"
    );
    assert_eq!(r.spf_results, vec![SpfResult::default()]);
    assert!(has_warning(&w, "record 2 has no source_ip"), "{w:?}");
}

#[test]
fn out_of_order_elements() {
    let (h, recs, w) = parse("out-of-order.xml");
    assert_eq!(h.format, Format::Rfc7489);
    assert_eq!(h.version, s("1.0"));
    assert_eq!(h.org_name, s("order.example.net"));
    assert_eq!(h.report_id, "order-5");
    assert_eq!((h.begin, h.end), (1700700000, 1700786399));
    assert_eq!(h.errors, vec!["first error", "second error"]);
    assert_eq!(h.policy.domain, "example.org");
    assert_eq!(h.policy.adkim, s("s"));
    assert_eq!(h.policy.p, s("quarantine"));
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.source_ip, "198.51.100.3");
    assert_eq!(r.count, 9);
    assert_eq!(r.disposition, s("none"));
    assert_eq!(r.envelope_to, s("example.com"));
    assert_eq!(r.envelope_from, s("example.org"));
    assert_eq!(
        r.spf_results,
        vec![SpfResult {
            domain: s("example.org"),
            scope: s("mfrom"),
            result: s("pass"),
            human_result: None,
        }]
    );
    assert_eq!(r.dkim_results[0].selector, s("q"));
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn metadata_after_records_is_buffered() {
    let (h, recs, w) = parse("metadata-after-records.xml");
    assert_eq!(h.org_name, s("late.example.org"));
    assert_eq!(h.report_id, "late-header-1");
    assert_eq!(h.policy.domain, "example.com");
    assert_eq!((h.begin, h.end), (1700800000, 1700886399));
    let counts: Vec<i64> = recs.iter().map(|r| r.count).collect();
    assert_eq!(counts, [1, 2, 3, 4, 5]);
    assert_eq!(recs[4].source_ip, "192.0.2.5");
    assert!(has_warning(&w, "out of schema order"), "{w:?}");

    let bytes = fixture("metadata-after-records.xml");
    let limits = |n| ParseLimits {
        max_buffered_records: n,
        ..ParseLimits::default()
    };
    let mut rr = ReportReader::with_limits(&bytes[..], limits(2));
    assert_eq!(rr.header().unwrap_err(), ParseError::TooManyBuffered(2));
    let mut rr = ReportReader::with_limits(&bytes[..], limits(3));
    assert_eq!(rr.header().unwrap().report_id, "late-header-1");
    let mut n = 0;
    while rr.next_record().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 5);
}

#[test]
fn ipv6_forms_and_bad_values() {
    let (h, recs, w) = parse("ipv6-and-bad-values.xml");
    assert_eq!(h.report_id, "v6-1");
    assert_eq!(h.policy.pct, None);
    let ips: Vec<&str> = recs.iter().map(|r| r.source_ip.as_str()).collect();
    assert_eq!(
        ips,
        [
            "2001:db8::1",
            "2001:db8::a2",
            "192.0.2.128",
            "2001:db8:85a3::8a2e:370:7334",
            "mail.example.org",
            "192.0.2.300"
        ]
    );
    assert!(recs[2].ip.unwrap().is_ipv4());
    assert!(recs[3].ip.unwrap().is_ipv6());
    assert_eq!(recs[4].ip, None);
    assert_eq!(recs[5].ip, None);
    let counts: Vec<i64> = recs.iter().map(|r| r.count).collect();
    assert_eq!(counts, [1, 2, 3, 4, 0, 0]);
    assert!(
        has_warning(&w, "non-numeric count 'abc' in record 5"),
        "{w:?}"
    );
    assert!(has_warning(&w, "(and 1 more like it)"), "{w:?}");
    assert!(
        has_warning(&w, "source_ip 'mail.example.org' is not an IP address"),
        "{w:?}"
    );
    assert!(has_warning(&w, "non-numeric pct 'one hundred'"), "{w:?}");
}

#[test]
fn billion_laughs_is_not_expanded() {
    let t = std::time::Instant::now();
    let (h, recs, w) = parse("billion-laughs.xml");
    assert!(t.elapsed().as_secs() < 2);
    assert_eq!(h.org_name, s("&lol9;"));
    assert_eq!(h.report_id, "lol-&lol9;");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].header_from, s("&lol9;.example.com"));
    assert!(has_warning(&w, "DOCTYPE ignored"), "{w:?}");
    assert!(has_warning(&w, "undefined entity &lol9;"), "{w:?}");
}

#[test]
fn external_entity_is_not_read() {
    let (h, recs, w) = parse("external-entity.xml");
    assert_eq!(h.report_id, "xxe-1");
    assert_eq!(h.extra_contact_info, s("&x;"));
    assert_eq!(recs[0].envelope_from, s("&y;"));
    let dump = format!("{h:?}{recs:?}{w:?}");
    assert!(!dump.contains("root:"), "file contents leaked");
    assert!(has_warning(&w, "undefined entity &x;"), "{w:?}");
}

#[test]
fn entities_cdata_comments_controls_stray_text() {
    let (h, recs, w) = parse("entities-cdata-comments.xml");
    assert_eq!(
        h.org_name,
        s("AT&T <Example> \"Q\" 'A' \u{e9}\u{e9} Tom&Jerry")
    );
    assert_eq!(h.email, s("cdata<reports>@example.org"));
    assert_eq!(h.report_id, "entities-1");
    assert_eq!(h.policy.sp, s("none"));
    assert_eq!(h.policy.pct, Some(100));
    assert_eq!(recs.len(), 1);
    assert_eq!(total(&recs), 8);
    assert_eq!(recs[0].header_from, s("example.com"));
    assert_eq!(
        recs[0].dkim_results[0].human_result,
        s("tab\there \nnewline &#0; nul")
    );
    assert!(has_warning(&w, "control characters removed"), "{w:?}");
    assert!(has_warning(&w, "invalid character reference &#0;"), "{w:?}");
}

#[test]
fn unknown_elements_are_skipped() {
    let (h, recs, w) = parse("unknown-elements.xml");
    assert_eq!(h.format, Format::Rfc9990);
    assert_eq!(h.version, s("2.0"));
    assert_eq!(h.report_id, "unk-1");
    assert_eq!((h.begin, h.end), (1701300000, 1701386399));
    assert_eq!(h.policy.domain, "example.com");
    assert_eq!(recs.len(), 2, "the <record> inside <deep> is not a record");
    assert_eq!(total(&recs), 5);
    assert_eq!(recs[0].dkim_results.len(), 1);
    assert_eq!(recs[0].dkim_results[0].selector, s("s"));
    for needle in [
        "unknown element <contact_phone> in <report_metadata> ignored",
        "unknown element <unknown-tag1> in <date_range> ignored",
        "unknown element <psd> in <policy_published> ignored",
        "unknown element <deep> in <policy_published> ignored",
        "unknown element <notes> in <feedback> ignored",
        "unknown element <arc> in <policy_evaluated> ignored (and 1 more like it)",
        "unknown element <extra> in <row> ignored",
        "unknown element <mail_from> in <identifiers> ignored",
        "unknown element <key_size> in <dkim> ignored",
        "unknown element <arc> in <auth_results> ignored",
    ] {
        assert!(w.iter().any(|x| x == needle), "{needle}: {w:#?}");
    }
    assert!(!has_warning(&w, "extension"), "{w:?}");
}

#[test]
fn stray_xs_schema_wrapper() {
    let (h, recs, w) = parse("xs-schema-wrapper.xml");
    assert_eq!(h.format, Format::Rfc7489);
    assert_eq!(h.org_name, s("wrapper.example.net"));
    assert_eq!(h.report_id, "aggr_report_2018_10_05_example");
    assert_eq!(h.policy.domain, "example.org");
    assert_eq!((h.begin, h.end), (1538690400, 1538776800));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].spf_results[0].scope, s("helo"));
    assert!(w.is_empty(), "{w:?}");
}

fn malformed(name: &str) -> ParseError {
    let bytes = std::fs::read(fixture_path(&format!("../malformed/reports/{name}"))).unwrap();
    let e = parse_slice(&bytes).expect_err(name);
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{name}: one line: {msg}");
    e
}

#[test]
fn malformed_inputs_are_errors() {
    assert_eq!(malformed("empty.xml"), ParseError::NoFeedback);
    assert_eq!(
        malformed("empty.xml").to_string(),
        "XML: no <feedback> element"
    );
    assert_eq!(malformed("plain-text.txt"), ParseError::NoFeedback);
    assert_eq!(malformed("json.json"), ParseError::NoFeedback);
    assert_eq!(malformed("no-feedback.xml"), ParseError::NoFeedback);
    let e = malformed("html.html");
    assert!(
        e.to_string().starts_with("XML: no <feedback> element"),
        "{e}"
    );
    let e = malformed("truncated.xml");
    assert!(
        matches!(e, ParseError::Truncated(_) | ParseError::Syntax { .. }),
        "{e}"
    );
    // Read past the stray end tag, the report lacks its policy: the reason
    // says both.
    assert_eq!(
        malformed("mismatched-tag.xml").to_string(),
        "missing <policy_published>/<domain> (the XML is not well-formed: stray end tag </report_meta>)"
    );
    assert_eq!(malformed("no-records.xml"), ParseError::NoRecords);
    assert_eq!(
        malformed("no-records.xml").to_string(),
        "report has no <record>"
    );
    assert_eq!(
        malformed("missing-report-id.xml").to_string(),
        "missing <report_id>"
    );
    assert_eq!(
        malformed("bad-begin.xml").to_string(),
        "<date_range>/<begin> is not an integer: 'not-a-number'"
    );
    assert_eq!(
        malformed("unescaped-lt.xml").to_string(),
        "missing <policy_published>/<domain> (the XML is not well-formed: <bad-xml@example.net> inside <email> (an unescaped '<'?) ignored)"
    );
}

#[test]
fn mismatched_end_tags_are_recovered_from() {
    // rfc7489-plain.xml with an unescaped '<' in <email>, a misspelt
    // </identifiers> and the last </record> missing.
    let bytes = std::fs::read(fixture_path(
        "../malformed/reports/mismatched-tags-recoverable.xml",
    ))
    .unwrap();
    let mut rr = ReportReader::new(&bytes[..]);
    let h = rr.header().unwrap().clone();
    assert_eq!(h.report_id, "rfc7489-plain-0001");
    assert_eq!(
        h.email, None,
        "the value inside the stray tag is not invented"
    );
    let mut recs = Vec::new();
    while let Some(r) = rr.next_record().unwrap() {
        recs.push(r);
    }
    assert!(rr.recovered());
    assert_eq!(recs.len(), 3);
    assert_eq!(total(&recs), 16);
    // The first record's <auth_results> came inside the unclosed
    // <identifiers>: read all the same.
    assert_eq!(recs[0].dkim_results.len(), 2);
    assert_eq!(recs[0].header_from.as_deref(), Some("example.com"));
    assert_eq!(recs[2].spf_results.len(), 1);
    let w = rr.warnings().join("\n");
    for want in [
        "not well-formed: <dmarc-reports@example.org> inside <email> (an unescaped '<'?) ignored",
        "not well-formed: end tag </identifier> matches no open element, ignored",
        "not well-formed: <identifiers> not closed before <auth_results>",
        "not well-formed: <record> closed by </feedback>",
    ] {
        assert!(w.contains(want), "{want} not in {w}");
    }
    // A well-formed report is not flagged.
    let plain = fixture("rfc7489-plain.xml");
    let mut ok = ReportReader::new(&plain[..]);
    while ok.next_record().unwrap().is_some() {}
    assert!(!ok.recovered());
}

#[test]
fn a_stray_end_tag_outside_everything_is_ignored() {
    let xml = b"</junk><feedback><report_metadata><org_name>o</org_name><report_id>r</report_id>\
<date_range><begin>1</begin><end>2</end></date_range></report_metadata></x>\
<policy_published><domain>example.com</domain></policy_published>\
<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record></feedback>";
    let (h, recs, w) = parse_slice(xml).unwrap();
    assert_eq!((h.report_id.as_str(), recs.len()), ("r", 1));
    assert!(w.iter().any(|w| w.contains("</junk>")), "{w:?}");
    assert!(w.iter().any(|w| w.contains("</x>")), "{w:?}");
}

#[test]
fn truncated_mid_record_streams_then_fails() {
    let bytes = fixture("rfc7489-plain.xml");
    let cut = bytes.len() - 400;
    let mut rr = ReportReader::new(&bytes[..cut]);
    assert_eq!(rr.header().unwrap().report_id, "rfc7489-plain-0001");
    assert!(rr.next_record().unwrap().is_some());
    let e = loop {
        match rr.next_record() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("truncation not noticed"),
            Err(e) => break e,
        }
    };
    // Sticky: the same error again, and the header stays available.
    assert_eq!(rr.next_record().unwrap_err(), e);
    assert_eq!(rr.header().unwrap().report_id, "rfc7489-plain-0001");
}

#[test]
fn header_is_idempotent_and_end_is_sticky() {
    let bytes = fixture("rfc7489-plain.xml");
    let mut rr = ReportReader::new(&bytes[..]);
    let h1 = rr.header().unwrap().clone();
    let h2 = rr.header().unwrap().clone();
    assert_eq!(h1, h2);
    let mut n = 0;
    while rr.next_record().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    assert_eq!(rr.next_record().unwrap(), None);
    assert_eq!(rr.header().unwrap(), &h1);
    // next_record without header() first works too.
    let mut rr = ReportReader::new(&bytes[..]);
    assert_eq!(rr.next_record().unwrap().unwrap().count, 12);
}

/// The error of a document that must not parse (without dumping huge values).
#[track_caller]
fn err_of(doc: &str) -> ParseError {
    match parse_slice(doc.as_bytes()) {
        Ok((h, r, _)) => panic!(
            "parsed unexpectedly: {} with {} records",
            h.report_id,
            r.len()
        ),
        Err(e) => e,
    }
}

fn report_with(meta_extra: &str, record_extra: &str) -> String {
    format!(
        "<feedback><report_metadata><org_name>o.example.org</org_name>{meta_extra}\
         <report_id>r</report_id><date_range><begin>1</begin><end>2</end></date_range>\
         </report_metadata><policy_published><domain>example.com</domain></policy_published>\
         <record><row><source_ip>192.0.2.1</source_ip><count>1</count></row>{record_extra}</record></feedback>"
    )
}

#[test]
fn depth_limit() {
    let deep = format!("{}x{}", "<a>".repeat(100), "</a>".repeat(100));
    let e = err_of(&report_with("", &deep));
    assert_eq!(e, ParseError::TooDeep(64));
    assert_eq!(e.to_string(), "XML nesting deeper than 64");
    // Before the root, too.
    let e = parse_slice(format!("{}<feedback/>", "<a>".repeat(70)).as_bytes()).unwrap_err();
    assert_eq!(e, ParseError::TooDeep(64));
    // Self-closing at the limit.
    let mut nested = String::new();
    for _ in 0..63 {
        nested.push_str("<a>");
    }
    let doc = format!("<feedback>{nested}<b/>");
    let e = parse_slice(doc.as_bytes()).unwrap_err();
    assert_eq!(e, ParseError::TooDeep(64));
}

#[test]
fn event_size_limits() {
    let big = "x".repeat((1 << 20) + 10);
    let e = err_of(&report_with(&format!("<email>{big}</email>"), ""));
    assert_eq!(e.to_string(), "text node larger than 1048576 bytes");
    // The same text split by references is capped as a whole.
    let split = "abc&amp;".repeat(300_000);
    let e = err_of(&report_with(&format!("<email>{split}</email>"), ""));
    assert_eq!(e.to_string(), "text node larger than 1048576 bytes");
    // Huge text in a skipped element is capped too (quick-xml would buffer it).
    let e = err_of(&report_with("", &format!("<junk>{big}</junk>")));
    assert_eq!(e.to_string(), "text node larger than 1048576 bytes");
    // Tags, attribute lists, comments.
    let attrs = format!("<junk a=\"{big}\"/>");
    let e = err_of(&report_with("", &attrs));
    assert!(
        matches!(
            e,
            ParseError::TooLarge {
                what: "XML tag or markup",
                ..
            }
        ),
        "{e}"
    );
    let comment = format!("<!--{big}-->");
    let e = err_of(&report_with("", &comment));
    assert!(matches!(e, ParseError::TooLarge { .. }), "{e}");
    // A custom, smaller limit.
    let limits = ParseLimits {
        max_event_bytes: 100,
        ..ParseLimits::default()
    };
    let doc = report_with(&format!("<email>{}</email>", "y".repeat(200)), "");
    let mut rr = ReportReader::with_limits(doc.as_bytes(), limits);
    assert_eq!(
        rr.header().unwrap_err(),
        ParseError::TooLarge {
            what: "text node",
            limit: 100
        }
    );
    // Just under the limit is fine.
    let doc = report_with(&format!("<email>{}</email>", "y".repeat(100)), "");
    let mut rr = ReportReader::with_limits(doc.as_bytes(), limits);
    assert_eq!(
        rr.header().unwrap().email.as_deref().map(str::len),
        Some(100)
    );
}

/// A reader that serves some bytes and then fails like a broken gzip stream.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.len().min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for FailingReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "corrupt deflate stream",
            ));
        }
        let end = (self.pos + 7).min(self.data.len());
        Ok(&self.data[self.pos..end])
    }
    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}

#[test]
fn read_errors_keep_their_message() {
    let data = fixture("rfc7489-plain.xml")[..1500].to_vec();
    let mut rr = ReportReader::new(FailingReader { data, pos: 0 });
    assert!(rr.header().is_ok());
    let e = loop {
        match rr.next_record() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("error swallowed"),
            Err(e) => break e,
        }
    };
    assert_eq!(e.to_string(), "read error: corrupt deflate stream");
}

#[test]
fn reader_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<ReportReader<&[u8]>>();
    assert_send::<ReportReader<Box<dyn BufRead + Send>>>();
}

#[test]
fn streams_many_records() {
    let n = 20_000;
    let mut rr = ReportReader::new(crate::synthetic::SyntheticReport::new("generated-1", n));
    assert_eq!(rr.header().unwrap().report_id, "generated-1");
    let (mut count, mut total) = (0u64, 0i64);
    while let Some(r) = rr.next_record().unwrap() {
        count += 1;
        total += r.count;
    }
    assert_eq!(count, n);
    assert_eq!(total, (0..n).map(|i| (i % 7 + 1) as i64).sum::<i64>());
    assert!(rr.warnings().is_empty(), "{:?}", rr.warnings());
}

#[test]
fn many_bad_records_keep_warnings_bounded() {
    let mut doc = report_with("", "").replace("</feedback>", "");
    for i in 0..5000 {
        doc.push_str(&format!(
            "<record><row><source_ip>host{i}</source_ip><count>n{i}</count><x{i}/></row></record>"
        ));
    }
    doc.push_str("</feedback>");
    let (_, recs, w) = parse_slice(doc.as_bytes()).unwrap();
    assert_eq!(recs.len(), 5001);
    assert!(w.len() <= 202, "{}", w.len());
    assert!(has_warning(&w, "(and 4999 more like it)"), "{w:?}");
}

/// Tiny deterministic PRNG for the robustness test.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn drain(bytes: &[u8]) {
    let mut rr = ReportReader::new(bytes);
    if rr.header().is_ok() {
        let mut guard = 0;
        while let Ok(Some(_)) = rr.next_record() {
            guard += 1;
            assert!(guard < 1_000_000);
        }
    }
    let _ = rr.warnings();
}

#[test]
fn truncated_and_mutated_fixtures_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reports");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("../malformed/reports")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitattributes"))
        .collect();
    files.sort();
    assert!(files.len() > 20);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    const NASTY: &[u8] = b"<>&;/!?[]-'\"\0\xff\xfe\xef\xbb\xbf\x80 =:#x";
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for cut in 0..=bytes.len() {
            drain(&bytes[..cut]);
        }
        for _ in 0..300 {
            let mut m = bytes.clone();
            for _ in 0..(1 + rng.next() % 8) {
                if m.is_empty() {
                    break;
                }
                let at = (rng.next() % m.len() as u64) as usize;
                match rng.next() % 4 {
                    0 => m[at] = NASTY[(rng.next() % NASTY.len() as u64) as usize],
                    1 => m[at] = rng.next() as u8,
                    2 => {
                        m.remove(at);
                    }
                    _ => {
                        let len = (rng.next() % 64) as usize;
                        let src = (rng.next() % m.len() as u64) as usize;
                        let chunk: Vec<u8> = m[src..(src + len).min(m.len())].to_vec();
                        m.splice(at..at, chunk);
                    }
                }
            }
            drain(&m);
        }
    }
    for _ in 0..2000 {
        let len = (rng.next() % 200) as usize;
        let junk: Vec<u8> = (0..len)
            .map(|_| NASTY[(rng.next() % NASTY.len() as u64) as usize])
            .collect();
        drain(&junk);
        let mut doc = b"<feedback>".to_vec();
        doc.extend_from_slice(&junk);
        drain(&doc);
    }
}

/// The shared corpus, if this machine has it.
fn corpus_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = vec![
        root.join("../shared/corpus"),
        root.join("../../shared/corpus"),
    ];
    if let Some(d) = std::env::var_os("DMARCDB_CORPUS") {
        candidates.insert(0, PathBuf::from(d));
    }
    candidates
        .into_iter()
        .find(|p| p.join("aggregate").is_dir())
}

/// Corpus files that must fail, and why (see the corpus MANIFEST.tsv).
const CORPUS_EXPECTED_ERRORS: &[(&str, &str)] = &[
    ("pm-empty.xml", "XML: no <feedback> element"), // zero bytes
    // <report_metadata> never closed, and it has no report_id or dates.
    (
        "smdr-dmarc-invalid-1.xml",
        "missing <report_id> (the XML is not well-formed: <report_metadata> not closed before <policy_published>)",
    ),
    ("smdr-dmarc-invalid-2.xml", "missing <date_range>/<begin>"),
    (
        "smdr-dmarc-invalid-3.xml",
        "<date_range>/<begin> is not an integer",
    ),
    ("smdr-dmarc-invalid-4.xml", "XML: no <feedback> element"), // plain text
];

#[test]
fn shared_corpus() {
    let Some(dir) = corpus_dir() else {
        eprintln!("SKIPPED shared_corpus: no corpus at ../shared/corpus or ../../shared/corpus (set DMARCDB_CORPUS)");
        return;
    };
    let mut files: Vec<PathBuf> = ["aggregate", "aggregate-bis"]
        .iter()
        .filter_map(|d| std::fs::read_dir(dir.join(d)).ok())
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    let (mut ok, mut err) = (0, 0);
    let mut unexpected = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(f).unwrap();
        let expected = CORPUS_EXPECTED_ERRORS.iter().find(|(n, _)| *n == name);
        match parse_slice(&bytes) {
            Ok((h, recs, w)) => {
                ok += 1;
                eprintln!(
                    "OK   {name}: {} {} {} records={} msgs={} warnings={w:?}",
                    h.format.as_str(),
                    h.reporter(),
                    h.report_id,
                    recs.len(),
                    total(&recs)
                );
                if expected.is_some() {
                    unexpected.push(format!("{name}: parsed but should fail"));
                }
            }
            Err(e) => {
                err += 1;
                eprintln!("ERR  {name}: {e}");
                match expected {
                    Some((_, want)) if e.to_string().contains(want) => {}
                    _ => unexpected.push(format!("{name}: {e}")),
                }
            }
        }
    }
    eprintln!("corpus: {ok} OK, {err} Err of {}", files.len());
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert!(ok >= 50, "{ok}");
}

/// The XML documents inside one corpus file: `.xml` as is, `.gz` (also
/// nested, as in `tpod-test.xml.gz.gz`) and `.zip` members ending in `.xml`,
/// decompressed here only to widen the parser's coverage (unpacking is the
/// extract module's job). Mail files (`.eml`) are left out.
fn corpus_documents(path: &Path) -> Vec<(String, Vec<u8>)> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = std::fs::read(path).unwrap();
    if name.ends_with(".xml") {
        return vec![(name, bytes)];
    }
    if name.ends_with(".gz") {
        while bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            if flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .is_err()
            {
                return vec![];
            }
            bytes = out;
        }
        return vec![(name, bytes)];
    }
    if name.ends_with(".zip") {
        let Ok(mut zip) = zip::ZipArchive::new(io::Cursor::new(bytes)) else {
            return vec![];
        };
        let mut docs = Vec::new();
        for i in 0..zip.len() {
            let Ok(mut f) = zip.by_index(i) else { continue };
            let member = f.name().map(|n| n.into_owned()).unwrap_or_default();
            if f.is_dir() || member.contains("__MACOSX") {
                continue;
            }
            if !member.ends_with(".xml") && !member.is_empty() {
                continue;
            }
            let mut out = Vec::new();
            if f.read_to_end(&mut out).is_ok() {
                docs.push((format!("{name}:{member}"), out));
            }
        }
        return docs;
    }
    vec![]
}

#[test]
fn shared_corpus_compressed() {
    let Some(dir) = corpus_dir() else {
        eprintln!("SKIPPED shared_corpus_compressed: no corpus");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("aggregate"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".gz") || n.ends_with(".zip")
        })
        .collect();
    files.sort();
    let (mut ok, mut err) = (0, Vec::new());
    for f in &files {
        for (name, xml) in corpus_documents(f) {
            match parse_slice(&xml) {
                Ok((h, recs, w)) => {
                    ok += 1;
                    eprintln!(
                        "OK   {name}: {} {} records={} warnings={w:?}",
                        h.format.as_str(),
                        h.report_id,
                        recs.len()
                    );
                }
                Err(e) => {
                    eprintln!("ERR  {name}: {e}");
                    err.push(name);
                }
            }
        }
    }
    eprintln!("compressed corpus: {ok} OK, {} Err", err.len());
    // smdr-multiple-invalid.zip holds three deliberately broken reports.
    assert!(
        err.iter()
            .all(|n| n.starts_with("smdr-multiple-invalid.zip:")),
        "{err:?}"
    );
    assert!(ok >= 10, "{ok}");
}

#[test]
fn corpus_specific_values() {
    let Some(dir) = corpus_dir() else {
        eprintln!("SKIPPED corpus_specific_values: no corpus");
        return;
    };
    let read = |p: &str| parse_slice(&std::fs::read(dir.join(p)).unwrap()).unwrap();
    let (h, recs, _) = read("aggregate/pm-!large-example.com!1711897200!1711983600.xml");
    assert_eq!(recs.len(), 2286);
    assert_eq!(h.org_name, None);
    let (h, recs, _) = read("aggregate/pm-ikea.com!example.de!1538690400!1538776800.xml");
    assert_eq!(h.report_id, "aggr_report_2018_10_05_5bc7e9b4f3e8a");
    assert_eq!(recs.len(), 1);
    let (h, _, w) = read("aggregate/cmt-report_invalid_mindate.xml");
    assert_eq!((h.begin, h.end), (1705904907, 1705909138));
    assert!(
        has_warning(&w, "<data_range> read as <date_range>"),
        "{w:?}"
    );
    let (_, recs, w) = read("aggregate/pm-invalid_utf_8.xml");
    assert!(recs[0].header_from.as_deref().unwrap().contains('\u{FFFD}'));
    assert!(has_warning(&w, "invalid UTF-8"), "{w:?}");
    let (h, _, _) = read("aggregate/pm-old_draft_from_wiki.xml");
    assert_eq!(h.format, Format::Draft);
    let (h, _, _) = read("aggregate/drv-google.xml");
    assert_eq!(
        h.format,
        Format::Rfc7489,
        "Google's <np> alone is not RFC 9990"
    );
    assert_eq!(h.policy.np, s("reject"));
    let (h, _, _) = read("aggregate/bbp-dmarc.xml");
    assert_eq!(h.org_name, s("AOL"));
    let (h, recs, _) = read("aggregate/pm-example.net!example.com!1529366400!1529452799.xml");
    assert_eq!(
        (h.policy.sp.as_deref(), h.policy.pct),
        (Some("none"), Some(100))
    );
    assert_eq!(recs.len(), 1);
    let (_, recs, _) = read("aggregate/pm-empty_reason.xml");
    assert!(recs.iter().any(|r| r.reasons.contains(&Reason::default())));
    for f in std::fs::read_dir(dir.join("aggregate-bis")).unwrap() {
        let f = f.unwrap().path();
        let (h, _, _) = parse_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(h.format, Format::Rfc9990, "{}", f.display());
    }
}

#[test]
fn implausible_counts_and_dates_are_warned_about() {
    let xml = |count: &str, begin: &str, end: &str| {
        format!(
            "<feedback><report_metadata><org_name>o</org_name><report_id>r</report_id>\
             <date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata>\
             <policy_published><domain>example.com</domain></policy_published>\
             <record><row><source_ip>192.0.2.1</source_ip><count>{count}</count></row></record></feedback>"
        )
    };
    let (_, recs, w) =
        parse_slice(xml("9223372036854775807", "1700000000", "1700086399").as_bytes()).unwrap();
    assert_eq!(recs[0].count, 0);
    assert!(
        w.iter()
            .any(|w| w.contains("implausible count 9223372036854775807")),
        "{w:?}"
    );
    let (_, recs, w) =
        parse_slice(xml("18446744073709551615", "1700000000", "1700086399").as_bytes()).unwrap();
    assert_eq!(recs[0].count, 0);
    assert!(
        w.iter()
            .any(|w| w.contains("implausible count 18446744073709551615")),
        "{w:?}"
    );
    let (_, recs, w) =
        parse_slice(xml("1000000000", "1700000000", "1700086399").as_bytes()).unwrap();
    assert_eq!((recs[0].count, w.len()), (1_000_000_000, 0), "{w:?}");
    let (h, _, w) = parse_slice(xml("1", "1700086399", "9223372036854775807").as_bytes()).unwrap();
    assert_eq!(h.end, i64::MAX, "stored as sent");
    assert!(
        w.iter()
            .any(|w| w.contains("implausible <date_range>/<end>")),
        "{w:?}"
    );
    let (_, _, w) = parse_slice(xml("1", "1700086399", "1700000000").as_bytes()).unwrap();
    assert!(
        w.iter()
            .any(|w| w.contains("begins (1700086399) after it ends")),
        "{w:?}"
    );
}

#[test]
fn missing_or_misspelt_end_tags_inside_the_report_are_recovered_from() {
    let base = String::from_utf8(fixture("rfc7489-plain.xml")).unwrap();
    let first_record_end = base.find("</record>").unwrap();
    for (what, broken) in [
        (
            "misspelt </report_id>",
            base.replace("</report_id>", "</report_i>"),
        ),
        (
            "unescaped '<' in org_name",
            base.replace("<org_name>mail.example.org", "<org_name>mail<example.org"),
        ),
        (
            "missing </record>",
            format!(
                "{}{}",
                &base[..first_record_end],
                &base[first_record_end + 9..]
            ),
        ),
        ("misspelt </row>", base.replacen("</row>", "</rwo>", 1)),
    ] {
        let mut rr = ReportReader::new(broken.as_bytes());
        let h = rr
            .header()
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .clone();
        let mut recs = Vec::new();
        while let Some(r) = rr.next_record().unwrap_or_else(|e| panic!("{what}: {e}")) {
            recs.push(r);
        }
        assert_eq!(
            (h.report_id.as_str(), h.begin, h.end),
            ("rfc7489-plain-0001", 1700006400, 1700092799),
            "{what}"
        );
        assert_eq!((recs.len(), total(&recs)), (3, 16), "{what}");
        assert!(rr.recovered(), "{what}");
        assert!(
            rr.warnings()
                .iter()
                .any(|w| w.starts_with("not well-formed")),
            "{what}"
        );
    }
}
