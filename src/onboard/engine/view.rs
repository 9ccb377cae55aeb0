//! What `reconcile` reads from a plan's facts (read-only): the Spot connections made through our
//! app and when their secret ends; and the rule that a role update never removes an action.

use super::*;
use crate::azure::arm::RoleDefinitionProperties;

/// A Spot connection through our app: which secret end Spot holds for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Held {
    pub tenant_id: String,
    pub subscription_id: String,
    pub account_id: String,
    /// Our app's client id.
    pub app_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// Every connection of the plan's subscriptions that goes through our app, with the end of the
/// secret Spot holds (its `expirationDate`).
pub(crate) fn held_secrets(plan: &Plan) -> Vec<Held> {
    let facts = &*plan.facts;
    let mut out = Vec::new();
    for t in &facts.tenants {
        let AppFact::Ours(app) = &t.app else { continue };
        for s in &t.subs {
            let (AccountFact::Reuse(a, _, _), Some(c)) = (&s.account, &s.spot_creds) else {
                continue;
            };
            let ours = c
                .client_id
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&app.app_id));
            if let (true, Some(end)) = (ours, c.expiration()) {
                out.push(Held {
                    tenant_id: t.tenant.clone(),
                    subscription_id: s.target.subscription_id.clone(),
                    account_id: a.account_id.clone(),
                    app_id: app.app_id.clone(),
                    expires: end,
                });
            }
        }
    }
    out
}

/// The actions `existing` has that `props` (the policy's) lacks are kept in `props`.
pub(super) fn keep_extra_actions(
    props: &mut RoleDefinitionProperties,
    existing: Option<&RoleDefinition>,
) {
    let Some(r) = existing else { return };
    let Some(p) = props.permissions.first_mut() else {
        return;
    };
    for have in r
        .properties
        .permissions
        .iter()
        .flat_map(|x| x.actions.iter())
    {
        if !p.actions.iter().any(|a| a.eq_ignore_ascii_case(have)) {
            p.actions.push(have.clone());
        }
    }
}
