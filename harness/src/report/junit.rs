//! JUnit XML: one test case per scenario, failures quoting the step or the
//! checker verdict with the offending events.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::runner::{Outcome, Status};

pub fn render(suite_name: &str, outcomes: &[Outcome]) -> String {
    let mut report = Report::new("mqtt-hil");
    let mut suite = TestSuite::new(suite_name);
    for o in outcomes {
        let status = match &o.status {
            Status::Passed | Status::Deviation(_) => TestCaseStatus::success(),
            Status::Skipped(why) => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(why.clone());
                s
            }
            Status::Failed | Status::Error(_) => {
                let kind = if matches!(o.status, Status::Failed) {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let text = o.failure_text();
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(text.lines().next().unwrap_or("failed").to_string());
                s.set_description(text);
                s
            }
        };
        let mut case = TestCase::new(o.id.clone(), status);
        case.set_classname(o.path.display().to_string());
        case.set_time(o.duration);
        case.set_system_out(crate::trace::render(&o.name, &o.history));
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->"))
}
