//! JUnit XML of a run's expectations, for CI systems (`twlab run --junit FILE`).
//!
//! The exit code already says whether every expectation held (1 when one did
//! not), but a CI system shows a failed step as one red line. Jenkins, GitLab,
//! GitHub actions that read test reports and most other CI systems instead
//! understand JUnit XML: each expectation of the scenario (`expect:`) becomes
//! a test case named after its text, so the CI page lists which expectation
//! failed and what was observed, and keeps its history across builds like any
//! other test.
//!
//! The XML is written by `quick-junit` (cargo-nextest's own writer), which
//! escapes text and strips the control characters that make XML invalid, so
//! a detail quoting a command's stderr cannot break the report.
//!
//! Shape: one `<testsuites>` named `twlab`, one `<testsuite>` named after the
//! scenario (with the kernel, twlab's version and whether every run completed
//! as properties, and the run's notes on `system-out`), and one `<testcase>`
//! per expectation: the detail goes in the `message` attribute and text of
//! `<failure>` for a failed one, and on `system-out` for a passed one.

use crate::error::{Error, Result};
use crate::output::{Format, Written};
use crate::results::Summary;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::path::Path;

/// JUnit XML, written where `twlab run --junit FILE` says.
pub struct Junit;

impl Format for Junit {
    fn name(&self) -> &'static str {
        "JUnit XML"
    }

    fn written(&self) -> Written {
        Written::UserPath
    }

    fn render(&self, summary: &Summary, _run_dir: &Path) -> Result<String> {
        render_junit(summary)
    }
}

/// JUnit XML: one testsuite named after the scenario, one testcase per
/// expectation (name = its text), failures with the detail.
pub fn render_junit(summary: &Summary) -> Result<String> {
    let info = &summary.info;
    let mut suite = TestSuite::new(summary.scenario.as_str());
    if let Ok(started) = chrono::DateTime::parse_from_rfc3339(&info.started_at) {
        suite.set_timestamp(started);
        if let Ok(finished) = chrono::DateTime::parse_from_rfc3339(&info.finished_at)
            && let Ok(elapsed) = (finished - started).to_std()
        {
            suite.set_time(elapsed);
        }
    }
    for (name, value) in [
        ("kernel", info.kernel.as_str()),
        ("twlab_version", info.twlab_version.as_str()),
        ("scenario_file", info.scenario_file.as_str()),
        ("complete", if info.complete { "true" } else { "false" }),
    ] {
        suite.add_property((name, value));
    }
    if !info.notes.is_empty() {
        suite.set_system_out(info.notes.join("\n"));
    }
    for expectation in &summary.expectations {
        let status = if expectation.passed {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_message(expectation.detail.as_str())
                .set_type("expectation failed")
                .set_description(format!("{}\n{}", expectation.text, expectation.detail));
            status
        };
        let mut case = TestCase::new(expectation.text.as_str(), status);
        case.set_classname(format!("twlab.{}", summary.scenario));
        if expectation.passed {
            case.set_system_out(expectation.detail.as_str());
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("twlab");
    report.add_test_suite(suite);
    report
        .to_string()
        .map_err(|e| Error::env(format!("cannot write the JUnit report: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Expectation, RunInfo};
    use quick_xml::events::Event;
    use quick_xml::{Reader, XmlVersion};
    use std::collections::BTreeMap;

    fn summary(expectations: Vec<Expectation>) -> Summary {
        Summary {
            scenario: "tw_reuse".into(),
            info: RunInfo {
                scenario_file: "scenarios/tw_reuse.yaml".into(),
                started_at: "2026-11-25T18:50:02+01:00".into(),
                finished_at: "2026-11-25T18:54:41+01:00".into(),
                kernel: "6.18.44".into(),
                twlab_version: "0.1.0".into(),
                complete: true,
                notes: vec!["conntrack keeps TIME_WAIT entries for 120 s.".into()],
                ..Default::default()
            },
            variants: vec![],
            comparisons: vec![],
            expectations,
            charts: vec![],
        }
    }

    /// An element of the parsed XML: its name, attributes and text.
    #[derive(Debug, Default)]
    struct Element {
        name: String,
        attrs: BTreeMap<String, String>,
        text: String,
    }

    /// Every element of an XML document in document order, with its text
    /// unescaped; panics when the document is not well-formed (quick-xml
    /// checks that end tags match).
    fn parse(xml: &str) -> Vec<Element> {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut elements: Vec<Element> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        loop {
            let event = reader.read_event().expect("well-formed XML");
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let attrs = e
                        .attributes()
                        .map(|a| {
                            let a = a.expect("attribute");
                            let value = a
                                .normalized_value(XmlVersion::Implicit1_0)
                                .expect("attribute value")
                                .into_owned();
                            (String::from_utf8_lossy(a.key.as_ref()).into_owned(), value)
                        })
                        .collect();
                    elements.push(Element {
                        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                        attrs,
                        text: String::new(),
                    });
                    if matches!(event, Event::Start(_)) {
                        open.push(elements.len() - 1);
                    }
                }
                Event::End(_) => {
                    open.pop().expect("balanced tags");
                }
                Event::Text(t) => {
                    if let Some(&i) = open.last() {
                        elements[i].text.push_str(&t.decode().expect("utf-8 text"));
                    }
                }
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref().expect("character reference") {
                        Some(c) => c,
                        None => match r.decode().expect("utf-8 reference").as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            other => panic!("unknown entity &{other}; in {xml}"),
                        },
                    };
                    if let Some(&i) = open.last() {
                        elements[i].text.push(resolved);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert!(open.is_empty(), "unclosed elements in {xml}");
        elements
    }

    #[test]
    fn one_test_case_per_expectation_with_the_failure_detail() {
        let s = summary(vec![
            Expectation {
                text: "client.sockets.TIME_WAIT steady_mean of reuse-on: change <= -20% (95% confidence)".into(),
                passed: true,
                detail: "change -64.6% (95% CI -70.1% .. -59.0%)".into(),
            },
            Expectation {
                text: "server.sockets.TIME_WAIT steady_mean of reuse-on: change <= -20% (95% confidence)".into(),
                passed: false,
                detail: "change +1.4% (95% CI -0.8% .. +3.6%) & <not> below".into(),
            },
        ]);
        let xml = render_junit(&s).expect("renders");
        let elements = parse(&xml);
        let suite = elements
            .iter()
            .find(|e| e.name == "testsuite")
            .expect("a testsuite");
        assert_eq!(suite.attrs["name"], "tw_reuse", "{xml}");
        assert_eq!(suite.attrs["tests"], "2", "{xml}");
        assert_eq!(suite.attrs["failures"], "1", "{xml}");
        assert_eq!(suite.attrs["errors"], "0", "{xml}");
        let cases: Vec<&Element> = elements.iter().filter(|e| e.name == "testcase").collect();
        assert_eq!(cases.len(), 2, "{xml}");
        assert_eq!(cases[0].attrs["name"], s.expectations[0].text, "{xml}");
        assert_eq!(cases[1].attrs["name"], s.expectations[1].text, "{xml}");
        let failures: Vec<&Element> = elements.iter().filter(|e| e.name == "failure").collect();
        assert_eq!(failures.len(), 1, "{xml}");
        assert_eq!(
            failures[0].attrs["message"], s.expectations[1].detail,
            "{xml}"
        );
        assert!(
            failures[0].text.contains(&s.expectations[1].detail),
            "{xml}"
        );
        let kernel = elements
            .iter()
            .find(|e| e.name == "property" && e.attrs.get("name").is_some_and(|n| n == "kernel"))
            .expect("kernel property");
        assert_eq!(kernel.attrs["value"], "6.18.44");
    }

    #[test]
    fn no_expectations_is_an_empty_suite() {
        let xml = render_junit(&summary(vec![])).expect("renders");
        let elements = parse(&xml);
        let suite = elements
            .iter()
            .find(|e| e.name == "testsuite")
            .expect("a testsuite");
        assert_eq!(suite.attrs["tests"], "0", "{xml}");
        assert!(!elements.iter().any(|e| e.name == "testcase"), "{xml}");
    }
}
