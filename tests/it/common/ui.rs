//! Fixtures for the UI tests: fixed ids and times, states built by feeding Actions to `update`
//! the way the event loop does.
#![allow(dead_code)]

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use spot_connect::app::state::{Init, Now, State};
use spot_connect::app::update::{Action, Effect, start, update};
use spot_connect::azure::auth::Identity;
use spot_connect::azure::discovery::{Discovery, Subscription, Tenant};
use spot_connect::cli::AuthMethod;
use spot_connect::error::{ApiError, Service};
use spot_connect::onboard::PlanView;
use spot_connect::onboard::model::*;
use spot_connect::spot::SpotAccount;
use std::time::Duration;
#[allow(unused_imports)]
pub use svg::screen_svg;
use time::macros::datetime;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const TENANT2: &str = "0b5c1e2a-3d4f-4a6b-8c9d-0e1f2a3b4c5d";
pub const SUB: &str = "9b1c3e7a-5d2f-4c8e-a1b0-6f4d2e8c7a13";
pub const SUB_DISABLED: &str = "1a2b3c4d-0000-4000-8000-00000000dead";
pub const SUB3: &str = "c0ffee00-1111-4222-8333-444455556666";
pub const SUB4: &str = "5e7a9c1b-2222-4333-9444-555566667777";
pub const ACCOUNT: &str = "act-7d3c9a21";

pub fn at(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

/// The time frames are drawn at.
pub fn now(secs: f64) -> Now {
    Now {
        mono: at(secs),
        wall: datetime!(2026-11-28 23:30:00 UTC) + time::Duration::seconds_f64(secs),
    }
}

pub fn key(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}
pub fn ch(c: char) -> Action {
    key(KeyCode::Char(c))
}
pub fn enter() -> Action {
    key(KeyCode::Enter)
}

pub fn init() -> Init {
    Init {
        demo: true,
        color: true,
        cloud: "custom".into(),
        auth_method: AuthMethod::DeviceCode,
        token_prefill: Some((
            "sim-token-0123456789abcdef".into(),
            "the simulator's endpoints file".into(),
        )),
        app_name: None,
        role_name: None,
        secret_months: 12,
        size: (80, 24),
        state_dir: Some("~/.local/state/spot-connect".into()),
        log_path: Some("~/.local/state/spot-connect/spot-connect.log".into()),
        subscriptions: vec![],
    }
}

pub fn accounts() -> Vec<SpotAccount> {
    vec![
        SpotAccount {
            account_id: "act-1f2e3d4c".into(),
            name: "platform-prod".into(),
            organization_id: Some("606079874a12".into()),
            provider_external_id: Some("2c4b6d8f-aaaa-4bbb-8ccc-ddddeeeeffff".into()),
            cloud_provider: Some("AZURE".into()),
            created_at: None,
        },
        SpotAccount {
            account_id: "act-0a9b8c7d".into(),
            name: "sandbox".into(),
            organization_id: Some("606079874a12".into()),
            provider_external_id: None,
            cloud_provider: None,
            created_at: None,
        },
    ]
}

pub fn identity() -> Identity {
    Identity {
        display: "ops@contoso.example".into(),
        home_tenant: Some(TENANT.into()),
        method: AuthMethod::DeviceCode,
    }
}

pub fn discovery() -> Discovery {
    let sub = |id: &str, name: &str, tenant: &str, state: &str| Subscription {
        subscription_id: id.into(),
        display_name: name.into(),
        tenant_id: tenant.into(),
        state: state.into(),
    };
    Discovery {
        tenants: vec![
            Tenant {
                tenant_id: TENANT.into(),
                display_name: "Contoso".into(),
                default_domain: Some("contoso.example".into()),
            },
            Tenant {
                tenant_id: TENANT2.into(),
                display_name: "Fabrikam".into(),
                default_domain: None,
            },
        ],
        subscriptions: vec![
            sub(SUB_DISABLED, "Legacy (cancelled)", TENANT, "Disabled"),
            sub(SUB, "Contoso Production", TENANT, "Enabled"),
            sub(SUB3, "Contoso Staging", TENANT, "Enabled"),
            sub(SUB4, "Fabrikam Analytics", TENANT2, "Warned"),
        ],
        skipped: vec![],
    }
}

pub fn device_code() -> DeviceCodePrompt {
    DeviceCodePrompt {
        user_code: "GKQ7-XR2M".into(),
        verification_uri: "https://microsoft.com/devicelogin".into(),
        expires_at: datetime!(2026-11-28 23:44:48 UTC),
        message: "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code GKQ7-XR2M to authenticate.".into(),
    }
}

fn plan_item(
    sub: Option<&str>,
    step: Step,
    object: &str,
    name: &str,
    action: PlanAction,
    id: Option<&str>,
    reason: &str,
) -> PlanItem {
    PlanItem {
        step,
        object: object.into(),
        name: name.into(),
        action,
        tenant_id: TENANT.into(),
        subscription_id: sub.map(str::to_string),
        id: id.map(str::to_string),
        reason: reason.into(),
        drift: None,
        ownership: None,
        hint: None,
    }
}

/// The tenant's shared objects as the engine plans them (app, service principal, secret, role).
fn shared_items() -> Vec<PlanItem> {
    let mut role = plan_item(
        None,
        Step::CustomRole,
        "custom role",
        "Spot.io Custom Role",
        PlanAction::Update,
        Some("4f1e2d3c-aaaa-4bbb-8ccc-000000000001"),
        "a role of this name exists and differs from Spot's policy",
    );
    role.drift = Some(Drift {
        missing: vec!["Microsoft.Compute/virtualMachineScaleSets/write".into()],
        extra: vec!["Microsoft.Storage/storageAccounts/delete".into()],
    });
    vec![
        plan_item(
            None,
            Step::AppRegistration,
            "app registration",
            "spot-connect-72f988bf",
            PlanAction::Create,
            None,
            "no app of this name exists",
        ),
        plan_item(
            None,
            Step::AppRegistration,
            "service principal",
            "spot-connect-72f988bf",
            PlanAction::Create,
            None,
            "created with the app",
        ),
        plan_item(
            None,
            Step::ClientSecret,
            "client secret",
            &format!("spot-connect {TENANT}"),
            PlanAction::Create,
            None,
            "a new secret for Spot, 12 months",
        ),
        role,
    ]
}

/// One subscription's objects (Spot account, role assignment, Spot credentials).
fn sub_items(sub: &str, name: &str) -> Vec<PlanItem> {
    vec![
        plan_item(
            Some(sub),
            Step::SpotAccount,
            "Spot account",
            name,
            PlanAction::Create,
            None,
            "no Spot account is connected to this subscription",
        ),
        plan_item(
            Some(sub),
            Step::RoleAssignment,
            "role assignment",
            "Spot.io Custom Role",
            PlanAction::Create,
            None,
            "the service principal has no role here",
        ),
        plan_item(
            Some(sub),
            Step::ConnectSpot,
            "Spot credentials",
            name,
            PlanAction::Create,
            None,
            "not connected yet",
        ),
    ]
}

fn target_of(sub: &str, name: &str) -> spot_connect::onboard::Target {
    spot_connect::onboard::Target {
        tenant_id: TENANT.into(),
        subscription_id: sub.into(),
        subscription_name: name.into(),
    }
}

/// The plan of Contoso Production, in the engine's order.
pub fn plan() -> PlanView {
    let mut items = shared_items();
    items.extend(sub_items(SUB, "Contoso Production"));
    PlanView::new(vec![target_of(SUB, "Contoso Production")], items)
}

/// The plan of Contoso Production and Contoso Staging: the shared objects once.
pub fn plan_many() -> PlanView {
    let mut items = shared_items();
    items.extend(sub_items(SUB, "Contoso Production"));
    items.extend(sub_items(SUB3, "Contoso Staging"));
    PlanView::new(
        vec![
            target_of(SUB, "Contoso Production"),
            target_of(SUB3, "Contoso Staging"),
        ],
        items,
    )
}

pub fn step(step: Step, event: StepEvent) -> Action {
    Action::Progress(Progress::Step {
        subscription: Some(SUB.into()),
        step,
        event,
    })
}

pub fn finished(s: Step, outcome: Outcome, id: &str, detail: &str) -> Action {
    step(
        s,
        StepEvent::Finished {
            outcome,
            id: Some(id.into()),
            detail: detail.into(),
        },
    )
}

pub fn started(s: Step, detail: &str) -> Action {
    step(
        s,
        StepEvent::Started {
            detail: detail.into(),
        },
    )
}

pub fn connect_error() -> ErrorInfo {
    let api = ApiError {
        service: Service::Spot,
        status: 400,
        code: "AZURE_MISSING_PERMISSIONS".into(),
        detail_codes: vec![],
        message: "The service principal has no role with Spot's actions on the subscription".into(),
        request_id: Some("5c2d7e1f-8a9b-4c3d-9e0f-1a2b3c4d5e6f".into()),
        retry_after: None,
        layer_retried: false,
    };
    ErrorInfo {
        summary: "connecting the subscription to Spot failed".into(),
        hint: Some(spot_connect::error::Hint::AssignmentPropagating),
        api: Some(api),
    }
}

pub fn report() -> Report {
    let obj = |step, object: &str, name: &str, id: &str, outcome| ObjectRef {
        step,
        object: object.into(),
        name: name.into(),
        id: id.into(),
        outcome,
    };
    Report {
        tenant_id: TENANT.into(),
        subscription_id: SUB.into(),
        subscription_name: "Contoso Production".into(),
        verdict: Verdict::Connected,
        spot_account_id: Some(ACCOUNT.into()),
        objects: vec![
            obj(
                Step::SpotAccount,
                "Spot account",
                "Contoso Production",
                ACCOUNT,
                Outcome::Created,
            ),
            obj(
                Step::AppRegistration,
                "app registration",
                "spot-connect-72f988bf",
                "a1b2c3d4-1111-4222-8333-000000000010",
                Outcome::Created,
            ),
            obj(
                Step::AppRegistration,
                "service principal",
                "spot-connect-72f988bf",
                "e5f6a7b8-1111-4222-8333-000000000011",
                Outcome::Created,
            ),
            obj(
                Step::ClientSecret,
                "client secret",
                "spot-connect 9b1c3e7a-5d2f-4c8e-a1b0-6f4d2e8c7a13",
                "0d1e2f3a-1111-4222-8333-000000000012",
                Outcome::Created,
            ),
            obj(
                Step::CustomRole,
                "custom role",
                "Spot.io Custom Role",
                "/subscriptions/9b1c3e7a-5d2f-4c8e-a1b0-6f4d2e8c7a13/providers/Microsoft.Authorization/roleDefinitions/4f1e2d3c-aaaa-4bbb-8ccc-000000000001",
                Outcome::Updated,
            ),
            obj(
                Step::RoleAssignment,
                "role assignment",
                "Spot.io Custom Role",
                "/subscriptions/9b1c3e7a-5d2f-4c8e-a1b0-6f4d2e8c7a13/providers/Microsoft.Authorization/roleAssignments/7a8b9c0d-1111-4222-8333-000000000013",
                Outcome::Created,
            ),
            obj(
                Step::ConnectSpot,
                "Spot credentials",
                "Contoso Production",
                ACCOUNT,
                Outcome::Created,
            ),
        ],
        secret_expires: Some(datetime!(2027-11-28 23:31:04 UTC)),
        durations_ms: vec![],
        total_ms: 18_400,
        error: None,
        report_path: Some("/home/operator/.local/state/spot-connect/reports/20261128T231502.123Z-9b1c3e7a-5d2f-4c8e-a1b0-6f4d2e8c7a13.json".into()),
        kept: None,
    }
}

/// Feeds actions at `t` seconds; returns every effect.
pub fn feed(s: &mut State, t: f64, actions: Vec<Action>) -> Vec<Effect> {
    let mut fx = vec![];
    for a in actions {
        fx.extend(update(s, a, at(t)));
    }
    fx
}

/// The wizard after start-up, with the background lookups answered.
pub fn started_state() -> State {
    let mut s = State::new(init());
    start(&mut s, at(0.0));
    feed(
        &mut s,
        0.3,
        vec![Action::Progress(Progress::DeviceCode(device_code()))],
    );
    feed(&mut s, 0.6, vec![Action::SpotAccounts(Ok(accounts()))]);
    // The start screen: Enter is "Connect subscriptions".
    feed(&mut s, 0.7, vec![enter()]);
    s
}

/// The start screen, with sign-in and discovery answered.
pub fn home_state() -> State {
    let mut s = State::new(init());
    start(&mut s, at(0.0));
    feed(
        &mut s,
        0.6,
        vec![
            Action::SpotAccounts(Ok(accounts())),
            Action::SignedIn(Ok(identity())),
            Action::Discovered(Ok(discovery())),
        ],
    );
    s
}

/// Walked with Enter to the Subscription pane, signed in and discovered.
pub fn at_subscription() -> State {
    let mut s = started_state();
    feed(&mut s, 1.0, vec![enter()]);
    feed(&mut s, 2.0, vec![Action::SignedIn(Ok(identity()))]);
    feed(
        &mut s,
        3.0,
        vec![Action::Discovered(Ok(discovery())), enter()],
    );
    s
}

/// On the confirmation screen with a plan.
pub fn at_confirm() -> State {
    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    let g = s.plan_gen;
    feed(
        &mut s,
        6.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(plan()),
            },
            enter(),
            enter(),
            enter(),
        ],
    );
    s
}

/// Onboarding running, the role assignment waiting for propagation.
pub fn waiting() -> State {
    let mut s = at_confirm();
    feed(&mut s, 10.0, vec![enter()]);
    feed(
        &mut s,
        10.2,
        vec![started(Step::SpotAccount, "creating the Spot account")],
    );
    feed(
        &mut s,
        10.9,
        vec![finished(
            Step::SpotAccount,
            Outcome::Created,
            ACCOUNT,
            "created Contoso Production",
        )],
    );
    feed(
        &mut s,
        10.3,
        vec![started(
            Step::AppRegistration,
            "creating the app registration",
        )],
    );
    feed(
        &mut s,
        11.5,
        vec![finished(
            Step::AppRegistration,
            Outcome::Created,
            "a1b2c3d4-1111-4222-8333-000000000010",
            "created with its service principal",
        )],
    );
    feed(
        &mut s,
        10.3,
        vec![started(Step::CustomRole, "updating the role")],
    );
    feed(
        &mut s,
        11.1,
        vec![finished(
            Step::CustomRole,
            Outcome::Updated,
            "/subscriptions/9b1c3e7a-5d2f-4c8e-a1b0-6f4d2e8c7a13/providers/Microsoft.Authorization/roleDefinitions/4f1e2d3c-aaaa-4bbb-8ccc-000000000001",
            "added 1 action, removed 1",
        )],
    );
    feed(
        &mut s,
        11.6,
        vec![started(Step::ClientSecret, "adding a password")],
    );
    feed(
        &mut s,
        12.0,
        vec![finished(
            Step::ClientSecret,
            Outcome::Created,
            "0d1e2f3a-1111-4222-8333-000000000012",
            "expires 2027-11-28",
        )],
    );
    feed(
        &mut s,
        12.0,
        vec![started(
            Step::RoleAssignment,
            "assigning the role to the service principal",
        )],
    );
    feed(
        &mut s,
        20.0,
        vec![step(
            Step::RoleAssignment,
            StepEvent::Waiting {
                reason: "waiting for Azure to propagate".into(),
                attempt: 3,
                next_in: Duration::from_secs(8),
            },
        )],
    );
    s
}

/// Renders `s` into a `w`x`h` test terminal and returns the screen as text.
pub fn render(s: &State, w: u16, h: u16, now: Now) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    term.draw(|f| spot_connect::ui::draw(f, s, now))
        .expect("draw");
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The status of the three selectable subscriptions: connected, expiring, broken.
pub fn statuses() -> Vec<spot_connect::onboard::status::SubscriptionStatus> {
    use spot_connect::onboard::status::*;
    let app = AppInfo {
        object_id: "a1b2c3d4-1111-4222-8333-000000000010".into(),
        app_id: "b2c3d4e5-1111-4222-8333-000000000020".into(),
        display_name: "spot-connect-72f988bf".into(),
    };
    let secret = |days: i64| SecretInfo {
        key_id: "0d1e2f3a-1111-4222-8333-000000000012".into(),
        display_name: Some("spot-connect 72f988bf".into()),
        end_date_time: Some(datetime!(2026-11-28 23:30:00 UTC) + time::Duration::days(days)),
        days_left: Some(days),
    };
    let role = RoleInfo {
        id: "4f1e2d3c-aaaa-4bbb-8ccc-000000000001".into(),
        name: "Spot.io Custom Role".into(),
        assignable_here: true,
        assignable_scopes: 2,
        drift: Drift::default(),
    };
    let spot = |id: &str| SpotInfo {
        account_id: id.into(),
        name: "Contoso Production".into(),
        credentials: None,
        kind: None,
    };
    vec![
        SubscriptionStatus {
            tenant_id: TENANT.into(),
            subscription_id: SUB.into(),
            subscription_name: "Contoso Production".into(),
            verdict: Health::Connected,
            problems: vec![],
            app: Some(app.clone()),
            service_principal_id: Some("e5f6a7b8-1111-4222-8333-000000000011".into()),
            secret: Some(secret(364)),
            role: Some(role.clone()),
            role_assignment_id: Some("7a8b9c0d-1111-4222-8333-000000000013".into()),
            spot_account: Some(spot(ACCOUNT)),
            note: None,
            unheld_secrets: vec![],
        },
        SubscriptionStatus {
            tenant_id: TENANT.into(),
            subscription_id: SUB3.into(),
            subscription_name: "Contoso Staging".into(),
            verdict: Health::Expiring,
            problems: vec!["the client secret ends in 12 days: run rotate-secret".into()],
            app: Some(app),
            service_principal_id: Some("e5f6a7b8-1111-4222-8333-000000000011".into()),
            secret: Some(secret(12)),
            role: Some(role),
            role_assignment_id: Some("7a8b9c0d-1111-4222-8333-000000000014".into()),
            spot_account: Some(spot("act-51e0b7c2")),
            note: None,
            unheld_secrets: vec![],
        },
        SubscriptionStatus {
            tenant_id: TENANT2.into(),
            subscription_id: SUB4.into(),
            subscription_name: "Fabrikam Analytics".into(),
            verdict: Health::Broken,
            problems: vec![
                "no app registration named spot-connect-0b5c1e2a".into(),
                "no Spot account is connected to this subscription".into(),
            ],
            app: None,
            service_principal_id: None,
            secret: None,
            role: None,
            role_assignment_id: None,
            spot_account: None,
            note: None,
            unheld_secrets: vec![],
        },
    ]
}

pub fn rotate_report(complete: bool) -> spot_connect::onboard::rotate::RotateReport {
    use spot_connect::onboard::rotate::*;
    RotateReport {
        tenant_id: TENANT.into(),
        app_id: "b2c3d4e5-1111-4222-8333-000000000020".into(),
        new_key_id: Some("9f8e7d6c-1111-4222-8333-000000000099".into()),
        new_end_date_time: Some(datetime!(2027-11-28 23:31:00 UTC)),
        accounts: vec![
            RotatedAccount {
                account_id: ACCOUNT.into(),
                subscription_id: SUB.into(),
                updated: true,
                error: None,
            },
            RotatedAccount {
                account_id: "act-51e0b7c2".into(),
                subscription_id: SUB3.into(),
                updated: complete,
                error: (!complete).then(connect_error),
            },
        ],
        removed_key_ids: if complete {
            vec!["0d1e2f3a-1111-4222-8333-000000000012".into()]
        } else {
            vec![]
        },
        left_key_ids: if complete {
            vec![]
        } else {
            vec![(
                "0d1e2f3a-1111-4222-8333-000000000012".into(),
                "act-51e0b7c2 still uses it".into(),
            )]
        },
        complete,
        error: None,
    }
}

/// What removing Contoso Production would do (as `plan_removal` finds it).
pub fn removal_rows() -> Vec<spot_connect::app::state::RemovalRow> {
    use spot_connect::app::state::RemovalRow;
    use spot_connect::onboard::remove::RemovalAction;
    let row = |object: &str, name: &str, id: &str, action, reason: &str| RemovalRow {
        object: object.into(),
        name: name.into(),
        id: id.into(),
        action,
        reason: reason.into(),
        hint: None,
    };
    vec![
        row(
            "role assignment",
            "Spot.io Custom Role",
            "7a8b9c0d-1111-4222-8333-000000000013",
            RemovalAction::Delete,
            "ours: our role to our app's service principal",
        ),
        row(
            "custom role",
            "Spot.io Custom Role",
            "4f1e2d3c-aaaa-4bbb-8ccc-000000000001",
            RemovalAction::Update,
            "still assignable in Contoso Staging: this subscription leaves its scopes",
        ),
        row(
            "client secret",
            "spot-connect 9b1c3e7a-5d2f-4c8e-a1b0-6f4d2e8c7a13",
            "0d1e2f3a-1111-4222-8333-000000000012",
            RemovalAction::Delete,
            "the secret of this subscription's Spot account",
        ),
        row(
            "app registration",
            "spot-connect-72f988bf",
            "a1b2c3d4-1111-4222-8333-000000000010",
            RemovalAction::Keep,
            "Contoso Staging still uses it",
        ),
        row(
            "Spot account",
            "Contoso Production",
            ACCOUNT,
            RemovalAction::Keep,
            "its Azure credentials are removed; the account stays (--delete-spot-account)",
        ),
    ]
}

/// The run of one subscription that connected.
pub fn run_report() -> Box<RunReport> {
    Box::new(RunReport {
        reports: vec![report()],
        stopped: None,
        throttled: 0,
        peak_concurrency: 1,
        total_ms: 21_400,
    })
}

/// Two subscriptions onboarded together: one connected, one failed.
pub fn bulk_report() -> RunReport {
    let ok = report();
    let mut failed = report();
    failed.subscription_id = SUB3.into();
    failed.subscription_name = "Contoso Staging".into();
    failed.verdict = Verdict::Failed;
    failed.spot_account_id = Some("act-51e0b7c2".into());
    failed.error = Some(connect_error());
    RunReport {
        reports: vec![ok, failed],
        stopped: None,
        throttled: 0,
        peak_concurrency: 2,
        total_ms: 21_400,
    }
}

/// Contoso Production (Contoso) and Fabrikam Analytics (Fabrikam) planned together: each
/// tenant its own app registration (its default name), secret and role.
pub fn plan_two_tenants() -> PlanView {
    let mut items = shared_items();
    items.extend(sub_items(SUB, "Contoso Production"));
    let mut other = shared_items();
    for i in &mut other {
        i.tenant_id = TENANT2.into();
        if i.object == "app registration" || i.object == "service principal" {
            i.name = "spot-connect-0b5c1e2a".into();
        }
        if i.object == "client secret" {
            i.name = format!("spot-connect {TENANT2}");
        }
    }
    items.extend(other);
    let mut fab = sub_items(SUB4, "Fabrikam Analytics");
    for i in &mut fab {
        i.tenant_id = TENANT2.into();
    }
    items.extend(fab);
    let mut t2 = target_of(SUB4, "Fabrikam Analytics");
    t2.tenant_id = TENANT2.into();
    PlanView::new(vec![target_of(SUB, "Contoso Production"), t2], items)
}

/// On the Subscription pane: Contoso Production and Fabrikam Analytics selected, Enter
/// pressed, the plan of both answered: the App registration pane of two tenants.
pub fn at_two_tenant_names() -> State {
    let mut s = at_subscription();
    // Contoso Production is highlighted; Fabrikam Analytics is the last row.
    feed(
        &mut s,
        4.0,
        vec![
            ch(' '),
            key(KeyCode::Down),
            key(KeyCode::Down),
            ch(' '),
            enter(),
        ],
    );
    let g = s.plan_gen;
    feed(
        &mut s,
        5.0,
        vec![Action::Planned {
            generation: g,
            result: Ok(plan_two_tenants()),
        }],
    );
    s
}

/// The first tenant's subscriptions as a rotation reads them first: both connected through
/// our app (each account's credentials name its appId), one older secret no account holds.
pub fn rotate_statuses() -> Vec<spot_connect::onboard::status::SubscriptionStatus> {
    let mut v: Vec<_> = statuses()
        .into_iter()
        .filter(|x| x.tenant_id == TENANT)
        .collect();
    for (i, x) in v.iter_mut().enumerate() {
        let app_id = x.app.as_ref().map(|a| a.app_id.clone());
        if let Some(acc) = x.spot_account.as_mut() {
            acc.credentials = Some(spot_connect::spot::AzureCredentialsInfo {
                client_id: app_id,
                tenant_id: Some(TENANT.into()),
                subscription_id: Some(x.subscription_id.clone()),
                expiration_date: None,
                client_secret_mask: None,
            });
        }
        if i == 1 {
            x.unheld_secrets = vec!["3c4d5e6f-1111-4222-8333-000000000077".into()];
        }
    }
    v
}

/// On the picker with `n` log lines ("line 0"…), the log pane open.
pub fn with_log(n: usize) -> State {
    let mut s = at_subscription();
    for i in 0..n {
        feed(
            &mut s,
            4.0 + i as f64,
            vec![Action::Progress(Progress::Log {
                message: format!("line {i}"),
            })],
        );
    }
    feed(&mut s, 30.0, vec![ch('l')]);
    s
}

/// Every pane and overlay the tests build, named.
pub fn every_pane() -> Vec<(&'static str, State)> {
    let mut v = vec![
        ("start", home_state()),
        ("spot_account", started_state()),
        ("subscription", at_subscription()),
        ("confirm", at_confirm()),
        ("apply", waiting()),
    ];
    let mut s = started_state();
    feed(&mut s, 1.0, vec![enter()]);
    v.push(("azure_login", s));
    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    v.push(("app_registration", s.clone()));
    feed(&mut s, 5.1, vec![enter()]);
    v.push(("client_secret", s.clone()));
    feed(&mut s, 5.2, vec![enter()]);
    v.push(("custom_role", s));
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![ch('/'), ch('c')]);
    v.push(("filtering", s));
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![ch('f'), ch('c')]);
    v.push(("searching", s));
    v.push(("log", with_log(3)));
    let mut s = waiting();
    feed(&mut s, 21.0, vec![ch('q')]);
    v.push(("quit_prompt", s));
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![ch('?')]);
    v.push(("help", s));
    for (i, name) in [(1, "status"), (2, "rotate"), (3, "remove")] {
        let mut s = home_state();
        let mut keys = vec![key(KeyCode::Down); i];
        keys.push(enter());
        feed(&mut s, 1.0, keys);
        v.push((name, s));
    }
    let mut s = home_state();
    feed(&mut s, 1.0, vec![key(KeyCode::Down), enter()]);
    feed(&mut s, 1.5, vec![Action::StatusRead(Ok(statuses()))]);
    v.push(("status_read", s));
    let mut s = home_state();
    feed(
        &mut s,
        1.0,
        vec![key(KeyCode::Down), key(KeyCode::Down), enter(), enter()],
    );
    feed(&mut s, 1.5, vec![Action::StatusRead(Ok(rotate_statuses()))]);
    v.push(("rotate_confirm", s));
    let mut s = waiting();
    feed(
        &mut s,
        30.0,
        vec![Action::Applied(Ok(run_report())), enter()],
    );
    v.push(("done", s));
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![Action::GroupsListed(Ok(groups()))]);
    v.push(("subscription_with_groups", s.clone()));
    feed(&mut s, 4.1, vec![ch('m')]);
    v.push(("management_groups", s));
    v
}

/// Contoso's management groups as resolved: "Platform" holds Staging and the nested
/// "Production" (Contoso Production); the cancelled subscription is left out.
pub fn groups() -> Vec<spot_connect::onboard::fleet::MgResolved> {
    use spot_connect::onboard::Target;
    use spot_connect::onboard::fleet::MgResolved;
    let target = |id: &str, name: &str| Target {
        tenant_id: TENANT.into(),
        subscription_id: id.into(),
        subscription_name: name.into(),
    };
    let line = |id: &str, name: &str| format!("{id} {name}");
    let prod = MgResolved {
        tenant_id: TENANT.into(),
        group_id: "contoso-prod".into(),
        display_name: "Production".into(),
        targets: vec![target(SUB, "Contoso Production")],
        placement: vec![(line(SUB, "Contoso Production"), "contoso-prod".into())],
        ..Default::default()
    };
    let platform = MgResolved {
        tenant_id: TENANT.into(),
        group_id: "contoso-platform".into(),
        display_name: "Platform".into(),
        targets: vec![
            target(SUB3, "Contoso Staging"),
            target(SUB, "Contoso Production"),
        ],
        not_enabled: vec![(
            target(SUB_DISABLED, "Legacy (cancelled)"),
            "Disabled".into(),
        )],
        groups: vec![(
            "contoso-prod".into(),
            "contoso-platform".into(),
            "Production".into(),
        )],
        placement: vec![
            (line(SUB3, "Contoso Staging"), "contoso-platform".into()),
            (
                format!(
                    "{} (Disabled: not connected)",
                    line(SUB_DISABLED, "Legacy (cancelled)")
                ),
                "contoso-platform".into(),
            ),
            (line(SUB, "Contoso Production"), "contoso-prod".into()),
        ],
        ..Default::default()
    };
    vec![platform, prod]
}

/// Renders `s` and returns the test terminal's buffer (text and styles).
pub fn buffer(s: &State, w: u16, h: u16, now: Now) -> ratatui::buffer::Buffer {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    term.draw(|f| spot_connect::ui::draw(f, s, now))
        .expect("draw");
    term.backend().buffer().clone()
}

/// A cell's style, compactly: foreground, `/`background, then modifiers as letters (B bold,
/// D dim, I italic, U underlined, R reversed, X crossed out, K blinking); `·` the default.
pub fn style_code(c: &ratatui::buffer::Cell) -> String {
    use ratatui::style::{Color, Modifier};
    let color = |c: Color| match c {
        Color::Reset => String::new(),
        Color::Indexed(i) => format!("i{i}"),
        Color::Rgb(r, g, b) => format!("#{r:02x}{g:02x}{b:02x}"),
        c => format!("{c:?}").to_lowercase(),
    };
    let mut out = color(c.fg);
    let bg = color(c.bg);
    if !bg.is_empty() {
        out.push('/');
        out.push_str(&bg);
    }
    for (m, l) in [
        (Modifier::BOLD, 'B'),
        (Modifier::DIM, 'D'),
        (Modifier::ITALIC, 'I'),
        (Modifier::UNDERLINED, 'U'),
        (Modifier::REVERSED, 'R'),
        (Modifier::CROSSED_OUT, 'X'),
        (Modifier::SLOW_BLINK, 'K'),
        (Modifier::RAPID_BLINK, 'K'),
    ] {
        if c.modifier.contains(m) && !out.ends_with(l) {
            if !out.is_empty() && !out.ends_with(|x: char| x.is_ascii_uppercase()) {
                out.push(' ');
            }
            out.push(l);
        }
    }
    if out.is_empty() { "·".into() } else { out }
}

/// The screen as text, then each row's styles run-length encoded ("14 B R, 26 ·, 4 cyan": 14
/// cells bold reversed, 26 default, 4 cyan), so a lost colour or emphasis shows in review.
pub fn render_styled(s: &State, w: u16, h: u16, now: Now) -> String {
    let buf = buffer(s, w, h, now);
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("--- styles (cells × fg/bg modifiers) ---\n");
    for y in 0..buf.area.height {
        let mut runs: Vec<(usize, String)> = vec![];
        for x in 0..buf.area.width {
            let code = style_code(&buf[(x, y)]);
            match runs.last_mut() {
                Some((n, c)) if *c == code => *n += 1,
                _ => runs.push((1, code)),
            }
        }
        // A row in the default style throughout is left out.
        if runs.len() == 1 && runs[0].1 == "·" {
            continue;
        }
        let runs: Vec<String> = runs.iter().map(|(n, c)| format!("{n} {c}")).collect();
        out.push_str(&format!("{y:02}: {}\n", runs.join(", ")));
    }
    out
}

/// A screen as an SVG (docs/screens/): a small hand-written renderer, one `<rect>` per run of a
/// background and one `<text>` per run of a style, each run stretched to its cells
/// (`textLength`) so box drawing lines up whatever monospace font the viewer has. The 16 ANSI
/// colours as a dark terminal shows them; reversed swaps the two; dim is half opacity.
pub mod svg {
    use ratatui::buffer::{Buffer, Cell};
    use ratatui::style::{Color, Modifier};

    const CW: usize = 9;
    const CH: usize = 18;
    const FG: &str = "#d4d4d4";
    const BG: &str = "#1e1e1e";

    fn rgb(c: Color) -> Option<String> {
        Some(
            match c {
                Color::Reset => return None,
                Color::Black => "#000000",
                Color::Red => "#cd3131",
                Color::Green => "#0dbc79",
                Color::Yellow => "#e5e510",
                Color::Blue => "#2472c8",
                Color::Magenta => "#bc3fbc",
                Color::Cyan => "#11a8cd",
                Color::Gray => "#e5e5e5",
                Color::DarkGray => "#666666",
                Color::LightRed => "#f14c4c",
                Color::LightGreen => "#23d18b",
                Color::LightYellow => "#f5f543",
                Color::LightBlue => "#3b8eea",
                Color::LightMagenta => "#d670d6",
                Color::LightCyan => "#29b8db",
                Color::White => "#ffffff",
                Color::Rgb(r, g, b) => return Some(format!("#{r:02x}{g:02x}{b:02x}")),
                Color::Indexed(i) => return Some(format!("#{0:02x}{0:02x}{0:02x}", i)),
            }
            .to_string(),
        )
    }

    /// (fill, background, bold, dim, italic, underlined) of a cell.
    fn look(c: &Cell) -> (String, Option<String>, bool, bool, bool, bool) {
        let m = c.modifier;
        let mut fg = rgb(c.fg);
        let mut bg = rgb(c.bg);
        if m.contains(Modifier::REVERSED) {
            std::mem::swap(&mut fg, &mut bg);
            fg = fg.or_else(|| Some(BG.to_string()));
            bg = bg.or_else(|| Some(FG.to_string()));
        }
        (
            fg.unwrap_or_else(|| FG.to_string()),
            bg,
            m.contains(Modifier::BOLD),
            m.contains(Modifier::DIM),
            m.contains(Modifier::ITALIC),
            m.contains(Modifier::UNDERLINED),
        )
    }

    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    pub fn screen_svg(buf: &Buffer) -> String {
        let (w, h) = (buf.area.width as usize, buf.area.height as usize);
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"15\">\n<rect width=\"100%\" height=\"100%\" fill=\"{BG}\"/>\n",
            w * CW,
            h * CH,
            w * CW,
            h * CH
        );
        let mut texts = String::new();
        for y in 0..h {
            let mut x = 0;
            while x < w {
                let l = look(&buf[(x as u16, y as u16)]);
                let mut end = x + 1;
                while end < w && look(&buf[(end as u16, y as u16)]) == l {
                    end += 1;
                }
                let text: String = (x..end)
                    .map(|i| buf[(i as u16, y as u16)].symbol())
                    .collect();
                let (fill, bg, bold, dim, italic, under) = &l;
                if let Some(bg) = bg {
                    out.push_str(&format!(
                        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{CH}\" fill=\"{bg}\"/>\n",
                        x * CW,
                        y * CH,
                        (end - x) * CW
                    ));
                }
                if !text.trim().is_empty() {
                    let mut attrs = format!("fill=\"{fill}\"");
                    if *bold {
                        attrs.push_str(" font-weight=\"bold\"");
                    }
                    if *dim {
                        attrs.push_str(" opacity=\"0.6\"");
                    }
                    if *italic {
                        attrs.push_str(" font-style=\"italic\"");
                    }
                    if *under {
                        attrs.push_str(" text-decoration=\"underline\"");
                    }
                    texts.push_str(&format!(
                        "<text x=\"{}\" y=\"{}\" textLength=\"{}\" lengthAdjust=\"spacingAndGlyphs\" xml:space=\"preserve\" style=\"white-space:pre\" {attrs}>{}</text>\n",
                        x * CW,
                        y * CH + 14,
                        (end - x) * CW,
                        esc(&text)
                    ));
                }
                x = end;
            }
        }
        out.push_str(&texts);
        out.push_str("</svg>\n");
        out
    }
}
