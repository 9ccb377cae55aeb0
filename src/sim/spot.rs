//! The Spot API: organization accounts and Azure credentials, with the `request`/`response`
//! envelope of reference/spot-api.md §1.2. "Connect" (set credentials, validation) checks the
//! credentials like the real service: a client-credentials sign-in in the simulated tenant, then a
//! role with every action of Spot's policy on the subscription.

use super::login::{ClientAuthError, check_client_secret};
use super::seed::{SPOT_ORG_ID, SPOT_TOKEN};
use super::state::{
    Principal, SpotAccount, SpotCredentials, World, parse_time, rfc3339, sub_scope,
};
use super::{Ctx, Resp, Sim};
use crate::error::spot_codes;
use serde_json::{Value, json};
use std::sync::OnceLock;
use time::OffsetDateTime;

/// Spot's published core role (reference/policies/spot-core-role-2024-05.json), the simulator's
/// own copy: what Spot's validation checks a connection against. Never the client's embedded
/// asset, so that a wrong asset (a missing action) is caught by the validation it would fail.
const POLICY_JSON: &str = include_str!("spot-core-role-2024-05.json");
const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
const KIND_ACCOUNT: &str = "spotinst:setup:account";
const KIND_CREDENTIALS: &str = "spotinst:azure:credentials";

/// The actions of Spot's policy (the simulator's copy of the published role JSON).
pub(crate) fn policy_actions() -> &'static [String] {
    static ACTIONS: OnceLock<Vec<String>> = OnceLock::new();
    ACTIONS.get_or_init(|| {
        let v: Value = serde_json::from_str(POLICY_JSON).unwrap_or(Value::Null);
        v.pointer("/properties/permissions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p.get("actions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect()
    })
}

pub(crate) fn request_json(ctx: &Ctx) -> Value {
    let ts = OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default();
    json!({"id": ctx.request_id, "url": ctx.url, "method": ctx.method.as_str(), "timestamp": ts})
}

fn ok_items(ctx: &Ctx, kind: &str, items: Vec<Value>) -> Resp {
    Resp::json(
        200,
        json!({
            "request": request_json(ctx),
            "response": {"status": {"code": 200, "message": "OK"}, "kind": kind, "items": items.clone(), "count": items.len()},
        }),
    )
}

fn ok_status(ctx: &Ctx) -> Resp {
    Resp::json(
        200,
        json!({"request": request_json(ctx), "response": {"status": {"code": 200, "message": "OK"}}}),
    )
}

fn errors(ctx: &Ctx, status: u16, errs: Vec<(String, String, Option<String>)>) -> Resp {
    let list: Vec<Value> = errs
        .into_iter()
        .map(|(code, message, field)| {
            let mut e = json!({"code": code, "message": message});
            if let Some(f) = field {
                e["field"] = json!(f);
            }
            e
        })
        .collect();
    let mut r = ctx.service.error(ctx, status, "", "");
    if let Some(b) = r.body.as_mut() {
        b["response"]["errors"] = Value::Array(list);
    }
    r
}

fn error(ctx: &Ctx, status: u16, code: &str, message: &str) -> Resp {
    ctx.service.error(ctx, status, code, message)
}

fn unauthorized(ctx: &Ctx) -> Resp {
    error(
        ctx,
        401,
        spot_codes::UNAUTHORIZED,
        "Unauthorized: the token is missing or not valid.",
    )
}

fn account_missing(ctx: &Ctx, id: Option<&str>) -> Resp {
    error(
        ctx,
        400,
        spot_codes::ACCOUNT_NOT_FOUND,
        &format!("Account {} does not exist", id.unwrap_or("(none)")),
    )
}

pub(crate) fn handle(sim: &Sim, ctx: &Ctx) -> Resp {
    let mut w = sim.world();
    // The organization admin's token sees everything; a scoped token (a user who is not an
    // Organization Admin) only its accounts.
    let scoped = match ctx.bearer() {
        Some(SPOT_TOKEN) => None,
        Some(t) => match w.spot_scoped_tokens.iter().position(|s| s.token == t) {
            Some(i) => Some(i),
            None => return unauthorized(ctx),
        },
        None => return unauthorized(ctx),
    };
    let sees = |w: &World, id: &str| {
        scoped.is_none_or(|i| w.spot_scoped_tokens[i].accounts.iter().any(|a| a == id))
    };
    let segs = ctx.segments();
    // A call on an account this token cannot see.
    let foreign = match (ctx.method.as_str(), segs.as_slice()) {
        (_, ["setup", "account", id]) => Some(id.to_string()),
        (_, ["azure", "setup", "credentials", ..]) => ctx.q("accountId").map(str::to_string),
        _ => None,
    }
    .filter(|id| w.spot_accounts.iter().any(|a| &a.id == id) && !sees(&w, id));
    if let Some(id) = foreign {
        return error(
            ctx,
            403,
            spot_codes::FORBIDDEN,
            &format!("Forbidden: the token has no permission for account {id}."),
        );
    }
    match (ctx.method.as_str(), segs.as_slice()) {
        ("GET", ["setup", "account"]) => {
            let filter = ctx.q("cloudAccountId");
            if scoped.is_some() && filter.is_none() {
                return error(
                    ctx,
                    403,
                    spot_codes::FORBIDDEN,
                    "Forbidden: listing the organization's accounts needs Organization Admin permissions.",
                );
            }
            let items = w
                .spot_accounts
                .iter()
                .filter(|a| sees(&w, &a.id))
                .filter(|a| {
                    filter.is_none_or(|f| {
                        a.provider_external_id
                            .as_deref()
                            .is_some_and(|p| p.eq_ignore_ascii_case(f))
                    })
                })
                .map(account_json)
                .collect();
            ok_items(ctx, KIND_ACCOUNT, items)
        }
        ("GET", ["setup", "account", id]) => match w.spot_accounts.iter().find(|a| a.id == *id) {
            Some(a) => ok_items(ctx, KIND_ACCOUNT, vec![account_json(a)]),
            None => account_missing(ctx, Some(id)),
        },
        ("POST", ["setup", "account"]) => {
            let body = ctx.json().unwrap_or(Value::Null);
            let name = body
                .pointer("/account/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !name.chars().any(|c| c.is_ascii_alphabetic()) {
                return errors(
                    ctx,
                    400,
                    vec![(
                        VALIDATION_ERROR.into(),
                        "The account name must contain at least one character that is a-z or A-Z"
                            .into(),
                        Some("name".into()),
                    )],
                );
            }
            let id = format!("act-{}", &w.new_guid().replace('-', "")[..8]);
            w.spot_accounts.push(SpotAccount {
                id: id.clone(),
                name: name.clone(),
                provider_external_id: None,
                cloud_provider: None,
                created_at: OffsetDateTime::now_utc(),
                credentials: None,
            });
            if let Some(i) = scoped {
                w.spot_scoped_tokens[i].accounts.push(id.clone());
            }
            ok_items(
                ctx,
                KIND_ACCOUNT,
                vec![json!({"id": id, "name": name, "organizationId": SPOT_ORG_ID})],
            )
        }
        ("DELETE", ["setup", "account", _]) if scoped.is_some() => error(
            ctx,
            403,
            spot_codes::FORBIDDEN,
            "Forbidden: only Organization Admins can delete an account.",
        ),
        ("DELETE", ["setup", "account", id]) => {
            match w.spot_accounts.iter().position(|a| a.id == *id) {
                Some(i) => {
                    w.spot_accounts.remove(i);
                    ok_status(ctx)
                }
                None => account_missing(ctx, Some(id)),
            }
        }
        (m, ["azure", "setup", "credentials", rest @ ..]) => {
            let account_id = ctx.q("accountId").map(str::to_string);
            let Some(i) = account_id
                .as_deref()
                .and_then(|id| w.spot_accounts.iter().position(|a| a.id == id))
            else {
                return account_missing(ctx, account_id.as_deref());
            };
            match (m, rest) {
                ("GET", []) => {
                    let items = w.spot_accounts[i]
                        .credentials
                        .iter()
                        .map(|c| {
                            json!({
                                "clientId": c.client_id, "tenantId": c.tenant_id, "subscriptionId": c.subscription_id,
                                "clientSecret": mask(&c.client_secret), "expirationDate": c.expiration_date,
                            })
                        })
                        .collect();
                    ok_items(ctx, KIND_CREDENTIALS, items)
                }
                ("POST", []) => {
                    let creds = match read_credentials(ctx, true) {
                        Ok(c) => c,
                        Err(r) => return r,
                    };
                    if let Err((code, msg)) = validate(sim, &w, &creds) {
                        return error(ctx, 400, code, &msg);
                    }
                    let a = &mut w.spot_accounts[i];
                    a.provider_external_id = Some(creds.subscription_id.clone());
                    a.cloud_provider = Some("AZURE".into());
                    a.credentials = Some(creds);
                    ok_status(ctx)
                }
                ("POST", ["validation"]) => {
                    let creds = match read_credentials(ctx, false) {
                        Ok(c) => c,
                        Err(r) => return r,
                    };
                    match validate(sim, &w, &creds) {
                        Ok(()) => ok_status(ctx),
                        Err((code, msg)) => error(ctx, 400, code, &msg),
                    }
                }
                _ => error(ctx, 404, "NOT_FOUND", "Route not found"),
            }
        }
        _ => error(ctx, 404, "NOT_FOUND", "Route not found"),
    }
}

fn account_json(a: &SpotAccount) -> Value {
    json!({
        "accountId": a.id,
        "name": a.name,
        "organizationId": SPOT_ORG_ID,
        "providerExternalId": a.provider_external_id,
        "cloudProvider": a.cloud_provider,
        "createdAt": rfc3339(a.created_at),
    })
}

/// `abc*****…`: the first three characters, the rest masked.
fn mask(secret: &str) -> String {
    let head: String = secret.chars().take(3).collect();
    format!(
        "{head}{}",
        "*".repeat(secret.chars().count().saturating_sub(3).max(37))
    )
}

/// The flat credentials body; `expirationDate` required on set, not on validation.
fn read_credentials(ctx: &Ctx, set: bool) -> Result<SpotCredentials, Resp> {
    let body = ctx.json().unwrap_or(Value::Null);
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut required = vec!["clientId", "clientSecret", "tenantId", "subscriptionId"];
    if set {
        required.push("expirationDate");
    }
    let mut errs: Vec<(String, String, Option<String>)> = required
        .iter()
        .filter(|k| field(k).is_none())
        .map(|k| {
            (
                VALIDATION_ERROR.to_string(),
                format!("\"{k}\" is required"),
                Some(k.to_string()),
            )
        })
        .collect();
    if let Some(d) = field("expirationDate")
        && parse_time(&d).is_none()
    {
        errs.push((
            VALIDATION_ERROR.into(),
            "\"expirationDate\" must be a valid ISO 8601 date".into(),
            Some("expirationDate".into()),
        ));
    }
    if !errs.is_empty() {
        return Err(errors(ctx, 400, errs));
    }
    Ok(SpotCredentials {
        client_id: field("clientId").unwrap_or_default(),
        client_secret: field("clientSecret").unwrap_or_default(),
        tenant_id: field("tenantId").unwrap_or_default(),
        subscription_id: field("subscriptionId").unwrap_or_default(),
        expiration_date: field("expirationDate").unwrap_or_default(),
    })
}

/// What Spot checks on connect: sign-in with the client credentials, then Spot's actions on the
/// subscription through role assignments that have taken effect.
fn validate(sim: &Sim, w: &World, c: &SpotCredentials) -> Result<(), (&'static str, String)> {
    let tenant = w
        .tenants
        .iter()
        .find(|t| t.id.eq_ignore_ascii_case(&c.tenant_id))
        .map(|t| t.id.clone())
        .ok_or((
            spot_codes::INVALID_CREDENTIALS,
            format!("AADSTS90002: Tenant '{}' not found.", c.tenant_id),
        ))?;
    let principal =
        check_client_secret(w, &tenant, &c.client_id, &c.client_secret).map_err(|e| match e {
            ClientAuthError::Expired(_) => (spot_codes::EXPIRED_SECRET, e.message()),
            _ => (spot_codes::INVALID_CREDENTIALS, e.message()),
        })?;
    let missing = |detail: String| {
        (
            spot_codes::MISSING_PERMISSIONS,
            format!(
                "The service principal of client '{}' lacks permissions Spot needs on subscription '{}': {detail}",
                c.client_id, c.subscription_id
            ),
        )
    };
    let sub = w
        .subscription(&c.subscription_id)
        .filter(|s| s.tenant_id == tenant)
        .ok_or_else(|| missing("the subscription is not visible to it.".into()))?;
    let Principal::ServicePrincipal { id, .. } = &principal else {
        return Err(missing("not a service principal.".into()));
    };
    let perms = w.effective_permissions(&tenant, id, &sub_scope(&sub.id), |born| sim.settled(born));
    let absent: Vec<&String> = policy_actions()
        .iter()
        .filter(|a| !perms.iter().any(|p| p.allows(a)))
        .collect();
    match absent.first() {
        None => Ok(()),
        Some(first) => Err(missing(format!(
            "{} of {} actions are not granted, e.g. '{first}'.",
            absent.len(),
            policy_actions().len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_policy_has_actions() {
        assert!(policy_actions().len() > 10);
        assert!(
            policy_actions()
                .iter()
                .any(|a| a == "Microsoft.Compute/disks/read")
        );
    }

    #[test]
    fn mask_keeps_three_characters() {
        let m = mask("abcdefgh");
        assert!(m.starts_with("abc*"));
        assert!(!m.contains('d'));
    }
}
