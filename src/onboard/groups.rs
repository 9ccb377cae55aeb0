//! The picker's "whole management group" choice: the groups each tenant lets the sign-in read,
//! each resolved as `--management-group` resolves it (`onboard::fleet::resolve`: its tree, the
//! enabled subscriptions below it, nested groups included).
//!
//! `resolve` lists the sign-in's subscriptions each time, so a group below one already resolved
//! is derived from that resolution (its part of the tree) instead: one discovery and one
//! `descendants` per top group, however many groups sit below it.

use super::Session;
use super::fleet::{self, MgResolved};
use crate::error::Error;
use std::collections::BTreeSet;

/// Every management group the sign-in can read in `tenants`, resolved. A tenant whose groups
/// cannot be listed (no right to read any: 403) has none; other errors are returned.
pub async fn list_groups(session: &Session, tenants: &[String]) -> Result<Vec<MgResolved>, Error> {
    let mut out: Vec<MgResolved> = vec![];
    for t in tenants {
        let arm = super::lookup::arm(session, t);
        let groups = match super::retry::read(|| arm.list_management_groups()).await {
            Ok(g) => g,
            Err(Error::Api(e)) if e.status == 403 || e.status == 404 => {
                tracing::info!("no management group readable in tenant {t}: {}", e.message);
                continue;
            }
            Err(e) => return Err(e),
        };
        for g in groups {
            if out.iter().any(|r| r.group_id.eq_ignore_ascii_case(&g.name)) {
                continue;
            }
            if let Some(above) = out.iter().find(|r| {
                r.groups
                    .iter()
                    .any(|(id, ..)| id.eq_ignore_ascii_case(&g.name))
            }) {
                let d = below(above, &g.name);
                out.push(d);
                continue;
            }
            match fleet::resolve(session, &g.name, &[]).await {
                Ok(r) => out.push(r),
                // Listed but not readable below (a guest's partial rights): not offered.
                Err(Error::Api(e)) if e.status == 403 => {
                    tracing::info!("management group {} not readable: {}", g.name, e.message)
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// The subscription a placement line is about (`fleet::MgResolved::placement`: its id first).
fn sub_of(line: &str) -> String {
    line.split(' ')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Group `id`'s part of `above`'s resolution: the groups below it, the subscriptions placed in
/// them, and of `above`'s targets those.
pub fn below(above: &MgResolved, id: &str) -> MgResolved {
    let mut within: BTreeSet<String> = [id.to_ascii_lowercase()].into();
    loop {
        let n = within.len();
        for (g, parent, _) in &above.groups {
            if within.contains(&parent.to_ascii_lowercase()) {
                within.insert(g.to_ascii_lowercase());
            }
        }
        if within.len() == n {
            break;
        }
    }
    let placement: Vec<(String, String)> = above
        .placement
        .iter()
        .filter(|(_, g)| within.contains(&g.to_ascii_lowercase()))
        .cloned()
        .collect();
    let subs: BTreeSet<String> = placement.iter().map(|(l, _)| sub_of(l)).collect();
    let has = |s: &str| subs.contains(&s.to_ascii_lowercase());
    MgResolved {
        tenant_id: above.tenant_id.clone(),
        group_id: above
            .groups
            .iter()
            .find(|(g, ..)| g.eq_ignore_ascii_case(id))
            .map_or_else(|| id.to_string(), |(g, ..)| g.clone()),
        display_name: above
            .groups
            .iter()
            .find(|(g, ..)| g.eq_ignore_ascii_case(id))
            .map_or_else(|| id.to_string(), |(_, _, n)| n.clone()),
        targets: above
            .targets
            .iter()
            .filter(|t| has(&t.subscription_id))
            .cloned()
            .collect(),
        excluded: above
            .excluded
            .iter()
            .filter(|t| has(&t.subscription_id))
            .cloned()
            .collect(),
        not_enabled: above
            .not_enabled
            .iter()
            .filter(|(t, _)| has(&t.subscription_id))
            .cloned()
            .collect(),
        unseen: above.unseen.iter().filter(|s| has(s)).cloned().collect(),
        groups: above
            .groups
            .iter()
            .filter(|(g, ..)| {
                !g.eq_ignore_ascii_case(id) && within.contains(&g.to_ascii_lowercase())
            })
            .cloned()
            .collect(),
        placement,
    }
}
