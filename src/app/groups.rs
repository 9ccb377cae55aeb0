//! The picker's "whole management group" choice: the groups each tenant lets the sign-in read,
//! each resolved as `--management-group` resolves it (`onboard::fleet::resolve`: its tree, the
//! enabled subscriptions below it, nested groups included).

use crate::error::Error;
use crate::onboard::Session;
use crate::onboard::fleet::{self, MgResolved};

/// Every management group the sign-in can read in `tenants`, resolved. A tenant whose groups
/// cannot be listed (no right to read any: 403) has none; other errors are returned.
pub async fn list_groups(session: &Session, tenants: &[String]) -> Result<Vec<MgResolved>, Error> {
    let mut out = vec![];
    for t in tenants {
        let arm = crate::onboard::status::arm(session, t);
        let groups = match crate::onboard::retry::read(|| arm.list_management_groups()).await {
            Ok(g) => g,
            Err(Error::Api(e)) if e.status == 403 || e.status == 404 => {
                tracing::info!("no management group readable in tenant {t}: {}", e.message);
                continue;
            }
            Err(e) => return Err(e),
        };
        for g in groups {
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
