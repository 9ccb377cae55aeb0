//! The plan types: [`PlanView`], what `apply` will do as front ends show it (any front end or
//! test can make one), and [`Plan`], a view together with the facts `onboard::plan` found
//! (never serialized). Only the engine makes a `Plan`, so the plan `apply` is given always has
//! its facts: there is nothing to check at run time. The model types below the engine know
//! nothing of it.

use super::Facts;
use crate::onboard::Target;
use crate::onboard::model::{KindCount, PlanAction, PlanItem};
use serde::Serialize;
use std::sync::Arc;

/// What `apply` will do, as shown: every object of every subscription, the tenant's shared
/// ones once.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanView {
    pub subscriptions: Vec<Target>,
    pub items: Vec<PlanItem>,
    /// Per kind of object, in the order of first appearance.
    pub counts: Vec<KindCount>,
}

/// A plan `onboard::apply` can carry out: exactly its view, with the facts it was made from
/// (made only by `onboard::plan`; read as its [`PlanView`] through `Deref`).
#[derive(Clone)]
pub struct Plan {
    view: PlanView,
    pub(crate) facts: Arc<Facts>,
}

impl Plan {
    /// The plan of `facts` (the engine's: `onboard::plan`).
    pub(crate) fn made(view: PlanView, facts: Facts) -> Plan {
        Plan {
            view,
            facts: Arc::new(facts),
        }
    }

    pub fn view(&self) -> &PlanView {
        &self.view
    }

    pub fn into_view(self) -> PlanView {
        self.view
    }
}

impl std::ops::Deref for Plan {
    type Target = PlanView;
    fn deref(&self) -> &PlanView {
        &self.view
    }
}

impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view.serialize(s)
    }
}

impl PartialEq for Plan {
    fn eq(&self, o: &Plan) -> bool {
        self.view == o.view
    }
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("subscriptions", &self.view.subscriptions)
            .field("items", &self.view.items)
            .finish_non_exhaustive()
    }
}

impl PlanView {
    /// The view of these items, with their counts.
    pub fn new(subscriptions: Vec<Target>, items: Vec<PlanItem>) -> PlanView {
        let mut counts: Vec<KindCount> = Vec::new();
        for i in &items {
            let c = match counts.iter().position(|c| c.object == i.object) {
                Some(n) => &mut counts[n],
                None => {
                    counts.push(KindCount {
                        object: i.object.clone(),
                        ..Default::default()
                    });
                    counts.last_mut().expect("just pushed")
                }
            };
            match i.action {
                PlanAction::Create => c.create += 1,
                PlanAction::Update => c.update += 1,
                PlanAction::Reuse => c.reuse += 1,
                PlanAction::Blocked => c.blocked += 1,
                PlanAction::Keep => c.keep += 1,
            }
        }
        PlanView {
            subscriptions,
            items,
            counts,
        }
    }

    pub fn blocked(&self) -> impl Iterator<Item = &PlanItem> {
        self.items
            .iter()
            .filter(|i| i.action == PlanAction::Blocked)
    }
    /// Items that write something (the confirmation screen lists these).
    pub fn writes(&self) -> impl Iterator<Item = &PlanItem> {
        self.items
            .iter()
            .filter(|i| matches!(i.action, PlanAction::Create | PlanAction::Update))
    }
}
