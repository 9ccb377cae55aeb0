//! `apply` with several subscriptions: `onboard::bulk::apply_many`, a line per step prefixed
//! with the subscription, a per-subscription outcome table at the end, `--json`: the array of
//! per-subscription reports (as when they run one after another).
//! Exit 0 all connected, 3 some failed, 1 all failed or stopped (sign-in, unreachable service).

use super::{progress_line, save_report};
use crate::cli::{CommonOpts, exit};
use crate::onboard::bulk::{BulkOptions, BulkReport, apply_many};
use crate::onboard::model::{Progress, Verdict};
use crate::onboard::{Session, Settings, Target};

pub async fn apply(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
    opts: &CommonOpts,
) -> i32 {
    eprintln!(
        "{} subscriptions in {} tenant(s): one app, one secret and one role per tenant; an assignment and a Spot account per subscription",
        targets.len(),
        {
            let mut t: Vec<&str> = targets.iter().map(|t| t.tenant_id.as_str()).collect();
            t.sort();
            t.dedup();
            t.len()
        }
    );
    if !opts.yes {
        eprint!("Onboard these {} subscriptions? [y/N] ", targets.len());
        if !super::remove::confirm_line().await {
            eprintln!("  nothing was changed");
            return exit::FAILED;
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let printer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            let prefix = match &p {
                Progress::Step {
                    subscription: Some(s),
                    ..
                } => format!("[{}]", &s[..s.len().min(8)]),
                _ => "[tenant]".into(),
            };
            if let Some(line) = progress_line(&p) {
                eprintln!("{prefix}{line}");
            }
        }
    });
    let mut report = apply_many(session, targets, settings, tx, BulkOptions::default()).await;
    let _ = printer.await;
    for r in report.reports.iter_mut() {
        if let Ok(p) = save_report(&opts.state_dir(), r) {
            r.report_path = Some(p);
        }
    }
    eprint!("{}", table(&report));
    if opts.json {
        // The same shape as one-after-another runs: an array of per-subscription reports.
        crate::cli::json_out::print(&serde_json::to_value(&report.reports).unwrap_or_default());
    }
    if let Some(e) = &report.stopped {
        eprintln!("spot-connect apply: stopped: {}", e.summary);
        return exit::FAILED;
    }
    match report.failed() {
        0 => exit::DONE,
        n if n == report.reports.len() => exit::FAILED,
        _ => exit::PARTIAL,
    }
}

/// The per-subscription outcome table.
pub fn table(report: &BulkReport) -> String {
    let mut out = format!(
        "\n{:<36}  {:<22}  {:<9}  {:<14}  {}\n",
        "SUBSCRIPTION", "NAME", "RESULT", "SPOT ACCOUNT", "SECRET ENDS / ERROR"
    );
    for r in &report.reports {
        let name: String = r.subscription_name.chars().take(22).collect();
        let (result, last) = match r.verdict {
            Verdict::Connected => (
                "connected",
                r.secret_expires
                    .map(|e| e.date().to_string())
                    .unwrap_or_default(),
            ),
            Verdict::Failed => (
                "FAILED",
                r.error
                    .as_ref()
                    .map(|e| e.summary.clone())
                    .unwrap_or_default(),
            ),
        };
        out.push_str(&format!(
            "{:<36}  {:<22}  {:<9}  {:<14}  {}\n",
            r.subscription_id,
            name,
            result,
            r.spot_account_id.as_deref().unwrap_or("-"),
            last
        ));
    }
    out.push_str(&format!(
        "{} connected, {} failed in {:.1} s (429 replies: {}, most at once: {})\n",
        report.reports.len() - report.failed(),
        report.failed(),
        report.total_ms as f64 / 1000.0,
        report.throttled,
        report.peak_concurrency
    ));
    out
}
