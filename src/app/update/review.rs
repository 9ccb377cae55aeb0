//! The names (app registration, role), the plan and its review: re-planning when a name
//! changes, take-over, plan again.

use super::*;
use crate::onboard::model::Step;

pub(super) fn on_planned(
    s: &mut State,
    generation: u64,
    result: Result<PlanView, ErrorInfo>,
) -> Vec<Effect> {
    if generation != s.plan_gen {
        return vec![];
    }
    match result {
        Ok(p) => {
            log(
                s,
                format!(
                    "plan: {} write(s), {} blocked",
                    p.writes().count(),
                    p.blocked().count()
                ),
            );
            prefill_names(s, &p);
            s.plan = Load::Ready(p);
            s.review_scroll = 0;
            clear_error(s, Origin::Plan);
        }
        Err(e) => {
            s.plan = Load::Failed(failed(s, "planning", Some(Origin::Plan), e));
        }
    }
    vec![]
}

/// The names the plan will use are shown in the fields, unless the operator typed their own.
pub(super) fn prefill_names(s: &mut State, p: &PlanView) {
    let name_of = |step: Step, object: &str| {
        p.items
            .iter()
            .find(|i| i.step == step && i.object == object)
            .map(|i| i.name.clone())
    };
    s.planned_app_names = p
        .items
        .iter()
        .filter(|i| i.step == Step::AppRegistration && i.object == "app registration")
        .map(|i| (i.tenant_id.clone(), i.name.clone()))
        .collect();
    if s.several_tenants() {
        // One name per tenant: the field shows the one of the tenant it edits.
        if let Some(tn) = s.name_tenant() {
            let planned = p
                .items
                .iter()
                .find(|i| {
                    i.step == Step::AppRegistration
                        && i.object == "app registration"
                        && i.tenant_id == tn
                })
                .map(|i| i.name.clone());
            if let Some(n) = s.app_names.get(&tn).cloned().or(planned) {
                set_text(&mut s.app_name, &n);
                s.app_name_default = Some(n);
            }
        }
    } else if s.app_name_text().is_empty()
        && let Some(n) = name_of(Step::AppRegistration, "app registration")
    {
        set_text(&mut s.app_name, &n);
        s.app_name_default = Some(n);
    }
    if s.role_name_text().is_empty()
        && let Some(n) = name_of(Step::CustomRole, "custom role")
    {
        set_text(&mut s.role_name, &n);
        s.role_name_default = Some(n);
    }
}

pub fn choices(s: &State) -> Choices {
    // An empty field means the default name (the engine's, or the plan's once known).
    let name = |text: String, default: &Option<String>| {
        if text.is_empty() {
            default.clone()
        } else {
            Some(text)
        }
    };
    Choices {
        app_name: name(s.app_name_text(), &s.app_name_default),
        app_names: Default::default(),
        role_name: name(s.role_name_text(), &s.role_name_default),
        secret_months: s.secret_months(),
        spot_account: account_choice(s),
        take_over: s.take_over,
        management_group: s.chosen_group.clone(),
    }
}

/// The names for work over several tenants (bulk, status, rotate, remove): what the operator
/// typed or gave on the command line, never the first tenant's default name.
pub fn shared_choices(s: &State) -> Choices {
    let pick = |text: String, default: &Option<String>, cli: &Option<String>| {
        if text.is_empty() || Some(&text) == default.as_ref() {
            cli.clone()
        } else {
            Some(text)
        }
    };
    // Several tenants: the field edits one tenant's name (kept in `app_names`), never all.
    let app_name = if s.several_tenants() {
        s.app_name_cli.clone()
    } else {
        pick(s.app_name_text(), &s.app_name_default, &s.app_name_cli)
    };
    Choices {
        app_name,
        app_names: s.app_names.clone(),
        role_name: pick(s.role_name_text(), &s.role_name_default, &s.role_name_cli),
        ..choices(s)
    }
}

/// Leaving the App registration field with several tenants: the name is that tenant's only.
/// Returns whether the names changed (the plan is made again).
pub(super) fn keep_tenant_name(s: &mut State) -> bool {
    let Some(tn) = s.name_tenant() else {
        return false;
    };
    let text = s.app_name_text();
    let before = s.app_names.get(&tn).cloned();
    if text.is_empty() {
        s.app_names.remove(&tn);
    } else if s.app_name_in(&tn).as_deref() != Some(text.as_str()) {
        s.app_names.insert(tn.clone(), text.clone());
    }
    let changed = s.app_names.get(&tn).cloned() != before;
    if changed {
        log(
            s,
            format!("app registration in {}: {text}", s.tenant_label(&tn)),
        );
    }
    changed
}

/// ↑/↓ on the App registration pane with several tenants: the field edits another tenant's
/// name (what was typed for the one left is kept first).
pub(super) fn move_name_tenant(s: &mut State, down: bool, at: Duration) -> Vec<Effect> {
    let n = s.run_tenants().len();
    if n < 2 {
        return vec![];
    }
    let mut fx = vec![];
    if s.field == Some(Field::AppName) {
        s.field = None;
        if keep_tenant_name(s) {
            fx = start_plan(s, at);
        }
    }
    s.name_tenant_sel = if down {
        (s.name_tenant_sel + 1).min(n - 1)
    } else {
        s.name_tenant_sel.saturating_sub(1)
    };
    if let Some(tn) = s.name_tenant() {
        let name = s.app_name_in(&tn).unwrap_or_default();
        set_text(&mut s.app_name, &name);
        s.app_name_default = Some(name);
    }
    fx
}

/// The operator's choices for this run: with several subscriptions (maybe of several
/// tenants) the shared names, never the first tenant's default.
pub(super) fn run_choices(s: &State) -> Choices {
    let several = s.targets.len() > 1
        || s.plan.ready().is_some_and(|p| p.subscriptions.len() > 1)
        || matches!(&s.run, Run::Finished(b) if b.reports.len() > 1);
    if several {
        shared_choices(s)
    } else {
        choices(s)
    }
}

pub(super) fn start_plan(s: &mut State, at: Duration) -> Vec<Effect> {
    let targets = if s.targets.is_empty() {
        s.target.iter().cloned().collect()
    } else {
        s.targets.clone()
    };
    if targets.is_empty() {
        return vec![];
    }
    let choices = run_choices(s);
    s.plan_gen += 1;
    s.plan = Load::Loading { since: at };
    vec![Effect::Plan {
        generation: s.plan_gen,
        targets,
        choices,
    }]
}
