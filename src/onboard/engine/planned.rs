//! The plan type: what `apply` will do, with the facts `plan` found travelling beside it (never
//! serialized), so that the model types below the engine know nothing of the engine.

use super::Facts;
use crate::onboard::Target;
use crate::onboard::model::{KindCount, PlanAction, PlanItem};
use serde::Serialize;

/// What `apply` will do: every object of every subscription, the tenant's shared ones once.
/// `onboard::apply` carries out exactly this plan (the facts it was made from travel with it,
/// never serialized).
#[derive(Clone, Serialize)]
pub struct Plan {
    pub subscriptions: Vec<Target>,
    pub items: Vec<PlanItem>,
    /// Per kind of object, in the order of first appearance.
    pub counts: Vec<KindCount>,
    #[serde(skip)]
    pub(crate) facts: Option<std::sync::Arc<Facts>>,
}

impl PartialEq for Plan {
    fn eq(&self, o: &Plan) -> bool {
        self.subscriptions == o.subscriptions && self.items == o.items
    }
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("subscriptions", &self.subscriptions)
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

impl Plan {
    /// A plan of these items (for front ends and tests); `apply` refuses it: only a plan made by
    /// `onboard::plan` can be applied.
    pub fn new(subscriptions: Vec<Target>, items: Vec<PlanItem>) -> Plan {
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
        Plan {
            subscriptions,
            items,
            counts,
            facts: None,
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
