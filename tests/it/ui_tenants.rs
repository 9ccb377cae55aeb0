//! Several tenants in one run (issue 21 §3): the picker groups by tenant, each tenant keeps its
//! own app registration name, plan rows and progress name their tenant and subscription.

use crate::common::ui::*;
use ratatui::crossterm::event::KeyCode;
use spot_connect::app::state::Pane;
use spot_connect::app::update::{Action, Effect};
use spot_connect::onboard::model::{Step, StepEvent};
use std::time::Duration;

fn plan_effect(fx: &[Effect]) -> spot_connect::app::update::Choices {
    fx.iter()
        .find_map(|e| match e {
            Effect::Plan { choices, .. } => Some(choices.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no plan effect in {fx:?}"))
}

#[test]
fn the_picker_groups_subscriptions_under_their_tenant() {
    let s = at_subscription();
    let screen = render(&s, 80, 24, now(4.0));
    let lines: Vec<&str> = screen.lines().collect();
    let row = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{screen}"))
    };
    let contoso = row("Tenant Contoso (contoso.example)");
    let fabrikam = row("Tenant Fabrikam");
    assert!(contoso < row("Contoso Production"), "{screen}");
    assert!(row("Contoso Staging") < fabrikam, "{screen}");
    assert!(fabrikam < row("Fabrikam Analytics"), "{screen}");
    insta::assert_snapshot!("picker_two_tenants_80x24", screen);
}

#[test]
fn the_picker_lists_a_tenant_s_subscriptions_together_whatever_the_discovery_order() {
    let mut s = at_subscription();
    // Discovery answers Fabrikam's subscription between two of Contoso's.
    let mut d = discovery();
    let fab = d.subscriptions.remove(3);
    d.subscriptions.insert(2, fab);
    feed(&mut s, 4.0, vec![Action::Discovered(Ok(d))]);
    let names: Vec<&str> = s
        .visible_subscriptions()
        .iter()
        .map(|x| x.display_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Legacy (cancelled)",
            "Contoso Production",
            "Contoso Staging",
            "Fabrikam Analytics"
        ]
    );
}

#[test]
fn editing_one_tenant_s_app_name_does_not_rename_the_other_s() {
    let mut s = at_two_tenant_names();
    assert_eq!(s.pane, Pane::AppRegistration);
    assert_eq!(s.app_name_text(), "spot-connect-72f988bf");
    // Tab into the field, replace Contoso's name, Enter.
    let mut keys = vec![key(KeyCode::Tab)];
    keys.extend((0..30).map(|_| key(KeyCode::Backspace)));
    keys.extend("contoso-spot".chars().map(ch));
    keys.push(enter());
    let fx = feed(&mut s, 6.0, keys);
    let c = plan_effect(&fx);
    assert_eq!(
        c.app_names.get(TENANT).map(String::as_str),
        Some("contoso-spot")
    );
    assert_eq!(c.app_names.get(TENANT2), None, "{c:?}");
    assert_eq!(c.app_name, None, "one name for all tenants: {c:?}");
    // The engine names the app per tenant from these choices.
    let settings = spot_connect::onboard::Settings {
        app_name: c.app_name.clone(),
        app_names: c.app_names.clone(),
        ..Default::default()
    };
    assert_eq!(settings.app_name_for(TENANT), "contoso-spot");
    assert_eq!(settings.app_name_for(TENANT2), "spot-connect-0b5c1e2a");
    // ↓: the field edits Fabrikam's, which kept its own name.
    feed(&mut s, 7.0, vec![key(KeyCode::Down)]);
    assert_eq!(s.app_name_text(), "spot-connect-0b5c1e2a");
    let screen = render(&s, 80, 24, now(7.0));
    assert!(screen.contains("Display name in Fabrikam"), "{screen}");
    assert!(screen.contains("contoso-spot"), "{screen}");
    // ↑: back to Contoso's, as typed.
    feed(&mut s, 7.5, vec![key(KeyCode::Up)]);
    assert_eq!(s.app_name_text(), "contoso-spot");
}

#[test]
fn the_names_pane_lists_one_app_registration_per_tenant() {
    let s = at_two_tenant_names();
    let screen = render(&s, 80, 24, now(6.0));
    assert!(
        screen.contains("Display name in Contoso (contoso.example)"),
        "{screen}"
    );
    assert!(screen.contains("spot-connect-0b5c1e2a"), "{screen}");
    insta::assert_snapshot!("names_two_tenants_80x24", screen);
}

#[test]
fn plan_rows_name_their_tenant() {
    let mut s = at_two_tenant_names();
    feed(&mut s, 6.0, vec![enter(), enter(), enter()]);
    assert_eq!(s.pane, Pane::Confirm);
    let screen = render(&s, 120, 40, now(6.5));
    assert!(
        screen.contains("Tenant Fabrikam, shared objects"),
        "{screen}"
    );
    assert!(
        screen.contains(
            "Subscription Fabrikam Analytics (5e7a9c1b-2222-4333-9444-555566667777) in Fabrikam"
        ),
        "{screen}"
    );
    assert!(
        screen.contains(
            "Subscription Contoso Production (9b1c3e7a-5d2f-4c8e-a1b0-6f4d2e8c7a13) in Contoso"
        ),
        "{screen}"
    );
}

#[test]
fn progress_details_stay_with_their_subscription() {
    let mut s = at_two_tenant_names();
    feed(&mut s, 6.0, vec![enter(), enter(), enter(), enter()]);
    assert_eq!(s.pane, Pane::Apply);
    let ev = |sub: &str, step, event| {
        Action::Progress(spot_connect::onboard::model::Progress::Step {
            subscription: Some(sub.into()),
            step,
            event,
        })
    };
    feed(
        &mut s,
        8.0,
        vec![
            ev(
                SUB,
                Step::RoleAssignment,
                StepEvent::Waiting {
                    reason: "waiting for Azure to propagate".into(),
                    attempt: 2,
                    next_in: Duration::from_secs(8),
                },
            ),
            ev(
                SUB4,
                Step::RoleAssignment,
                StepEvent::Started {
                    detail: "assigning the role in Fabrikam".into(),
                },
            ),
        ],
    );
    let screen = render(&s, 120, 40, now(8.5));
    let line = |needle: &str| {
        screen
            .lines()
            .find(|l| l.contains(needle) && !l.contains("Tenant"))
            .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{screen}"))
            .to_string()
    };
    let contoso = line("Contoso Production  ");
    let fabrikam = line("Fabrikam Analytics  ");
    assert!(contoso.contains("waiting for Azure"), "{contoso}");
    assert!(!contoso.contains("assigning"), "{contoso}");
    assert!(fabrikam.contains("assigning the role"), "{fabrikam}");
    assert!(!fabrikam.contains("waiting"), "{fabrikam}");
    // The detail on top says whose it is.
    assert!(
        screen.contains("Role assignment: Fabrikam Analytics in Fabrikam"),
        "{screen}"
    );
}

/// The wizard's per-tenant names reach the engine: against the simulator, a plan of Contoso
/// Production and Fabrikam Production with Contoso's app renamed names that app in Contoso
/// only; Fabrikam's keeps its default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_typed_for_one_tenant_names_only_that_tenant_s_app_in_the_plan() {
    use spot_connect::onboard::{self, Session, Settings, Target};
    use spot_connect::sim::seed;
    let dir = tempfile::tempdir().unwrap();
    let sim = spot_connect::sim::start(&Default::default(), &dir.path().join("sim"))
        .await
        .expect("simulator starts");
    let common = spot_connect::cli::CommonOpts {
        state_dir: Some(dir.path().join("state")),
        ..Default::default()
    };
    let endpoints = (
        sim.endpoints(),
        spot_connect::secret::Secret::new(sim.endpoints.spot_token.clone()),
    );
    let session =
        Session::build(&common, Some(endpoints), std::sync::Arc::new(|_| {})).expect("session");
    session
        .auth
        .sign_in()
        .await
        .expect("sign-in (auto-approved)");
    let targets = [
        Target {
            tenant_id: seed::CONTOSO_TENANT_ID.into(),
            subscription_id: seed::SUB_CONTOSO_PROD.into(),
            subscription_name: "Contoso Production".into(),
        },
        Target {
            tenant_id: seed::FABRIKAM_TENANT_ID.into(),
            subscription_id: seed::SUB_FABRIKAM_STAGING.into(),
            subscription_name: "Fabrikam Staging".into(),
        },
    ];
    let settings = Settings {
        app_names: [(
            seed::CONTOSO_TENANT_ID.to_string(),
            "contoso-spot".to_string(),
        )]
        .into(),
        ..Default::default()
    };
    let plan = onboard::plan(&session, &targets, &settings)
        .await
        .expect("plan");
    let app_in = |tenant: &str| -> Vec<String> {
        plan.items
            .iter()
            .filter(|i| {
                i.step == Step::AppRegistration
                    && i.object == "app registration"
                    && i.tenant_id == tenant
            })
            .map(|i| i.name.clone())
            .collect()
    };
    assert_eq!(app_in(seed::CONTOSO_TENANT_ID), ["contoso-spot"]);
    assert_eq!(
        app_in(seed::FABRIKAM_TENANT_ID),
        [Settings::default().app_name_for(seed::FABRIKAM_TENANT_ID)]
    );
    sim.shutdown().await;
}
