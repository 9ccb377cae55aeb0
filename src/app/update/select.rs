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

/// Enter: the selected subscriptions (in discovery order), or else the highlighted one; the
/// plan is made (again when the choice changed) and the names pane opens.
pub(super) fn advance(s: &mut State, at: Duration) -> Vec<Effect> {
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
    let changed = s.target.as_ref() != Some(&target) || s.targets != targets;
    s.targets = targets;
    s.target = Some(target);
    if changed || matches!(s.plan, Load::Idle | Load::Failed(_)) {
        fx = review::start_plan(s, at);
    }
    s.pane = Pane::AppRegistration;
    fx
}
