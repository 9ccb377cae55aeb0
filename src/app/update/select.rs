//! The subscription picker: the filter, the selection, Enter taking the chosen ones.

use super::*;

pub(super) fn first_selectable(s: &State) -> Option<usize> {
    s.visible_subscriptions()
        .iter()
        .position(|x| x.selectable())
}

/// Space: select or unselect the highlighted subscription.
pub(super) fn toggle(s: &mut State) -> Vec<Effect> {
    if let Some(sub) = s.selected_subscription()
        && sub.selectable()
    {
        let id = sub.subscription_id.clone();
        if !s.selected.remove(&id) {
            s.selected.insert(id);
        }
    }
    vec![]
}

/// a / n / i: select every subscription the filter shows (that can be chosen), none of them,
/// or the others of them; what the filter hides keeps its selection.
pub(super) fn select_shown(s: &mut State, cmd: super::super::keymap::Cmd) -> Vec<Effect> {
    use super::super::keymap::Cmd;
    let shown: Vec<String> = s
        .visible_subscriptions()
        .into_iter()
        .filter(|x| x.selectable())
        .map(|x| x.subscription_id.clone())
        .collect();
    for id in shown {
        match cmd {
            Cmd::SelectAll => {
                s.selected.insert(id);
            }
            Cmd::SelectNone => {
                s.selected.remove(&id);
            }
            _ => {
                if !s.selected.remove(&id) {
                    s.selected.insert(id);
                }
            }
        }
    }
    vec![]
}

/// `m`: the management-group tree instead of the subscriptions (the first group highlighted),
/// and back.
pub(super) fn toggle_groups(s: &mut State) -> Vec<Effect> {
    if s.groups.ready().is_none_or(Vec::is_empty) {
        return vec![];
    }
    s.group_view = !s.group_view;
    if s.group_view
        && s.group_rows()
            .get(s.group_sel)
            .is_none_or(|r| r.group.is_none())
    {
        s.group_sel = 0;
    }
    vec![]
}

/// Enter on a group of the tree: every enabled subscription below it (nested groups included),
/// connected as `apply --management-group` connects them (one role and one assignment at the
/// group; the engine's scope in the choices).
fn advance_group(s: &mut State, at: Duration) -> Vec<Effect> {
    let Some(g) = s.selected_group().cloned() else {
        return vec![];
    };
    if g.targets.is_empty() {
        log(
            s,
            format!(
                "management group {} holds no enabled subscription to connect",
                g.group_id
            ),
        );
        return vec![];
    }
    let scope = g.scope(false);
    let changed = s.chosen_group.as_ref() != Some(&scope) || s.targets != g.targets;
    log(
        s,
        format!(
            "whole management group {} ({}): {} subscription(s)",
            g.display_name,
            g.group_id,
            g.targets.len()
        ),
    );
    s.chosen_group = Some(scope);
    s.targets = g.targets.clone();
    s.target = g.targets.first().cloned();
    let mut fx = vec![];
    if changed || matches!(s.plan, Load::Idle | Load::Failed(_)) {
        fx = review::start_plan(s, at);
    }
    s.pane = Pane::AppRegistration;
    fx
}

/// Enter: the selected subscriptions (in discovery order), or else the highlighted one; the
/// plan is made (again when the choice changed) and the names pane opens.
pub(super) fn advance(s: &mut State, at: Duration) -> Vec<Effect> {
    if s.group_view {
        return advance_group(s, at);
    }
    // Subscriptions chosen one by one: not a management group's run.
    let was_group = s.chosen_group.take().is_some();
    let mut fx = vec![];
    // Toggled ones (in discovery order), or else the highlighted one.
    let toggled: Vec<Target> = s
        .discovery
        .ready()
        .map(|d| {
            d.subscriptions
                .iter()
                .filter(|x| x.selectable() && s.selected.contains(&x.subscription_id))
                .map(Target::from)
                .collect()
        })
        .unwrap_or_default();
    let targets = if toggled.is_empty() {
        let Some(sub) = s.selected_subscription() else {
            return fx;
        };
        if !sub.selectable() {
            return fx;
        }
        vec![Target::from(sub)]
    } else {
        toggled
    };
    let target = targets[0].clone();
    let changed = was_group || s.target.as_ref() != Some(&target) || s.targets != targets;
    s.targets = targets;
    s.target = Some(target);
    if changed || matches!(s.plan, Load::Idle | Load::Failed(_)) {
        fx = review::start_plan(s, at);
    }
    s.pane = Pane::AppRegistration;
    fx
}
