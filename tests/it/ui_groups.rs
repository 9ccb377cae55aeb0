//! Issue 19, the wizard's "whole management group" choice: against the simulator (its groups
//! Contoso Spot > Contoso Spot Production), the picker shows the tree (`m`), and Enter on a
//! group plans exactly what `apply --management-group` plans; applying it connects the group's
//! subscriptions with one assignment at the group.

use crate::common::ui as ui_support;

use spot_connect::app::state::{Pane, State};
use spot_connect::app::update::{Action, Effect};
use spot_connect::onboard::{self, Session, Settings};
use spot_connect::sim::seed;
use ui_support::*;

fn item_lines(p: &onboard::Plan) -> Vec<String> {
    let mut v: Vec<String> = p
        .items
        .iter()
        .map(|i| {
            format!(
                "{:?} {} {} {:?} {:?} {:?}",
                i.step, i.object, i.name, i.action, i.subscription_id, i.id
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_picker_offers_a_whole_management_group_and_connects_it_as_apply_does() {
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
    let d = session.discover().await.expect("discovery");
    let tenants: Vec<String> = d.tenants.iter().map(|t| t.tenant_id.clone()).collect();
    // What the runtime does after discovery.
    let groups = spot_connect::onboard::groups::list_groups(&session, &tenants)
        .await
        .expect("groups listed");
    let ids: Vec<&str> = groups.iter().map(|g| g.group_id.as_str()).collect();
    assert!(
        ids.contains(&seed::MG_SPOT) && ids.contains(&seed::MG_SPOT_PROD),
        "{ids:?}"
    );

    // The nested group is derived from its parent's resolution (no second discovery), and is
    // what resolving it alone gives.
    let nested = groups
        .iter()
        .find(|g| g.group_id == seed::MG_SPOT_PROD)
        .unwrap();
    let alone = onboard::fleet::resolve(&session, seed::MG_SPOT_PROD, &[])
        .await
        .expect("resolve the nested group");
    let ids = |v: &[onboard::Target]| {
        let mut v: Vec<String> = v.iter().map(|t| t.subscription_id.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&nested.targets), ids(&alone.targets));
    assert_eq!(nested.display_name, alone.display_name);
    assert_eq!(nested.groups, alone.groups);
    assert_eq!(nested.placement.len(), alone.placement.len());

    // The wizard, fed what the runtime would feed it.
    let mut s: State = started_state();
    feed(&mut s, 1.0, vec![enter()]);
    feed(&mut s, 2.0, vec![Action::SignedIn(Ok(identity()))]);
    feed(
        &mut s,
        3.0,
        vec![Action::Discovered(Ok(d.clone())), enter()],
    );
    assert_eq!(s.pane, Pane::Subscription);
    let footer = render(&s, 80, 24, now(3.5));
    assert!(!footer.contains("m groups"), "no group listed yet: no m");
    feed(&mut s, 3.6, vec![Action::GroupsListed(Ok(groups.clone()))]);
    assert!(render(&s, 80, 24, now(3.7)).contains("m groups"));
    feed(&mut s, 4.0, vec![ch('m')]);
    assert!(s.group_view);
    let screen = render(&s, 80, 24, now(4.1));
    insta::assert_snapshot!("picker_management_groups_80x24", screen.clone());
    // The tree: the top group, its subscription, the nested group and its own.
    let at = |needle: &str| {
        screen
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in\n{screen}"))
    };
    assert!(
        at(seed::MG_SPOT_NAME) < at(seed::MG_SPOT_PROD_NAME),
        "{screen}"
    );
    assert!(
        at(seed::MG_SPOT_PROD_NAME) < at(&seed::SUB_CONTOSO_PROD[..8]),
        "{screen}"
    );
    // ↓/↑ move between groups (a subscription's row is not a choice); f finds a group.
    let chosen = |s: &State| s.selected_group().map(|g| g.group_id.clone());
    feed(
        &mut s,
        4.15,
        vec![key(ratatui::crossterm::event::KeyCode::Down)],
    );
    assert_eq!(chosen(&s).as_deref(), Some(seed::MG_SPOT_PROD));
    feed(
        &mut s,
        4.16,
        vec![key(ratatui::crossterm::event::KeyCode::Up)],
    );
    assert_eq!(chosen(&s).as_deref(), Some(seed::MG_SPOT));
    feed(
        &mut s,
        4.17,
        vec![ch('f'), ch('p'), ch('r'), ch('o'), ch('d')],
    );
    assert_eq!(chosen(&s).as_deref(), Some(seed::MG_SPOT_PROD));
    feed(
        &mut s,
        4.18,
        vec![key(ratatui::crossterm::event::KeyCode::Esc)],
    );
    assert_eq!(chosen(&s).as_deref(), Some(seed::MG_SPOT));
    // Space and a/n/i select subscriptions only: not in the tree.
    feed(&mut s, 4.2, vec![ch(' '), ch('a')]);
    assert!(s.selected.is_empty());
    let fx = feed(&mut s, 4.5, vec![enter()]);
    let Some(Effect::Plan {
        targets, choices, ..
    }) = fx.into_iter().find(|e| matches!(e, Effect::Plan { .. }))
    else {
        panic!("Enter on a group plans");
    };
    let g = choices
        .management_group
        .clone()
        .expect("the group is the scope");
    assert_eq!(g.id, seed::MG_SPOT);
    assert_eq!(s.pane, Pane::AppRegistration);
    let group = groups.iter().find(|x| x.group_id == seed::MG_SPOT).unwrap();
    assert_eq!(
        targets, group.targets,
        "every enabled subscription below it"
    );
    assert!(targets.len() >= 2, "nested group's included: {targets:?}");

    // The wizard's plan is the one `plan/apply --management-group` makes.
    let wizard = Settings {
        management_group: choices.management_group.clone(),
        secret_months: choices.secret_months,
        ..Default::default()
    };
    let plan = onboard::plan(&session, &targets, &wizard)
        .await
        .expect("plan");
    let resolved = onboard::fleet::resolve(&session, seed::MG_SPOT, &[])
        .await
        .expect("resolve");
    let cli = Settings {
        management_group: Some(resolved.scope(false)),
        secret_months: choices.secret_months,
        ..Default::default()
    };
    let cli_plan = onboard::plan(&session, &resolved.targets, &cli)
        .await
        .expect("cli plan");
    assert_eq!(item_lines(&plan), item_lines(&cli_plan));
    let at_group: Vec<String> = item_lines(&plan)
        .into_iter()
        .filter(|l| {
            l.contains("RoleAssignment") && l.contains(seed::MG_SPOT) && !l.contains("data")
        })
        .collect();
    assert!(!at_group.is_empty(), "{:#?}", item_lines(&plan));

    // The review shows that plan: the group's assignment, every subscription.
    let g = s.plan_gen;
    feed(
        &mut s,
        5.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(plan.view().clone()),
            },
            enter(),
            enter(),
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::Confirm);
    let review = render(&s, 120, 40, now(5.5));
    println!("--- review of a management group (120x40) ---\n{review}");
    assert!(review.contains(seed::MG_SPOT), "{review}");
    // Confirming it (the review's Enter) applies that plan: the subscriptions are connected.
    let (ptx, _prx) = tokio::sync::mpsc::unbounded_channel();
    let run = onboard::apply(&session, &plan, ptx).await;
    for r in &run.reports {
        assert_eq!(
            r.verdict,
            onboard::model::Verdict::Connected,
            "{} {:?}",
            r.subscription_id,
            r.error
        );
    }
    sim.shutdown().await;
}
