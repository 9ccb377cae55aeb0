//! `--fault-rate P --seed N`: deterministic injected faults. Whether call number `seq` fails, and
//! how, depends only on the seed and `seq` (the order of calls), never on the clock.

use super::SimOpts;
use super::state::mix;
use super::{Ctx, Resp, Service};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// 429 with Retry-After: 1.
    Throttle,
    /// 500.
    Internal,
    /// 503 with Retry-After: 1.
    Unavailable,
    /// Connection closed before the request is processed.
    DropBefore,
    /// The request is processed (the write happens), then the connection is closed.
    DropAfter,
    /// Role-assignment PUT only: PrincipalNotFound even with principalType.
    PrincipalNotFound,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::Internal => "internal_error",
            Fault::Unavailable => "unavailable",
            Fault::DropBefore => "drop_before",
            Fault::DropAfter => "drop_after",
            Fault::PrincipalNotFound => "principal_not_found",
        }
    }

    pub fn drops(self) -> bool {
        matches!(self, Fault::DropBefore | Fault::DropAfter)
    }

    /// Faults that replace the handler (everything but DropAfter and the ARM-specific one).
    pub fn before_handling(self) -> bool {
        !matches!(self, Fault::DropAfter | Fault::PrincipalNotFound)
    }

    /// The reply for a fault that replaces the handler (in the service's error shape).
    pub fn reply(self, ctx: &Ctx) -> Resp {
        let s = ctx.service;
        // (status, code, OAuth code, message, Retry-After)
        let (status, code, oauth, message, retry) = match self {
            Fault::Throttle => (
                429,
                "TooManyRequests",
                "temporarily_unavailable",
                "The request is being throttled. Retry after the time in the Retry-After header.",
                true,
            ),
            Fault::Unavailable => (
                503,
                "ServiceUnavailable",
                "temporarily_unavailable",
                "The service is temporarily unavailable. Please retry.",
                true,
            ),
            _ => (
                500,
                "InternalServerError",
                "server_error",
                "An internal server error occurred. Please retry the request.",
                false,
            ),
        };
        let r = s.error(
            ctx,
            status,
            if s == Service::Login { oauth } else { code },
            message,
        );
        if retry {
            r.header("retry-after", "1")
        } else {
            r
        }
    }
}

/// The reply of an armed `Fail(status)`: the service's error shape, no `Retry-After` (so a
/// client's own backoff is what is measured).
pub(crate) fn status_reply(ctx: &Ctx, status: u16) -> Resp {
    let (code, oauth, message) = match status {
        503 => (
            "ServiceUnavailable",
            "temporarily_unavailable",
            "The service is temporarily unavailable. Please retry.",
        ),
        502 => ("BadGateway", "server_error", "Bad gateway."),
        504 => ("GatewayTimeout", "server_error", "The gateway timed out."),
        _ => (
            "InternalServerError",
            "server_error",
            "An internal server error occurred. Please retry the request.",
        ),
    };
    let s = ctx.service;
    s.error(
        ctx,
        status,
        if s == Service::Login { oauth } else { code },
        message,
    )
}

pub(crate) fn is_role_assignment_put(ctx: &Ctx) -> bool {
    ctx.method == axum::http::Method::PUT
        && ctx
            .path
            .to_ascii_lowercase()
            .contains("/providers/microsoft.authorization/roleassignments/")
}

/// The fault for call number `seq`, if any.
pub(crate) fn pick(opts: &SimOpts, seq: u64, role_assignment_put: bool) -> Option<Fault> {
    if opts.fault_rate <= 0.0 {
        return None;
    }
    let h = mix(opts.seed.wrapping_mul(0x1000_0000_01B3) ^ mix(seq));
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    if u >= opts.fault_rate {
        return None;
    }
    let mut kinds = vec![
        Fault::Throttle,
        Fault::Internal,
        Fault::Unavailable,
        Fault::DropBefore,
        Fault::DropAfter,
    ];
    if role_assignment_put {
        kinds.push(Fault::PrincipalNotFound);
    }
    Some(kinds[(mix(h) % kinds.len() as u64) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_rate_is_roughly_respected() {
        let opts = SimOpts {
            fault_rate: 0.3,
            seed: 42,
            ..SimOpts::default()
        };
        let a: Vec<_> = (1..=1000).map(|n| pick(&opts, n, false)).collect();
        let b: Vec<_> = (1..=1000).map(|n| pick(&opts, n, false)).collect();
        assert_eq!(a, b);
        let faults = a.iter().filter(|f| f.is_some()).count();
        assert!((200..400).contains(&faults), "{faults} faults for rate 0.3");
        let other = SimOpts {
            seed: 43,
            ..opts.clone()
        };
        assert_ne!(
            a,
            (1..=1000)
                .map(|n| pick(&other, n, false))
                .collect::<Vec<_>>()
        );
        assert!(!a.contains(&Some(Fault::PrincipalNotFound)));
        let all = SimOpts {
            fault_rate: 1.0,
            ..opts
        };
        assert!((1..=200).any(|n| pick(&all, n, true) == Some(Fault::PrincipalNotFound)));
        assert!((1..=200).all(|n| pick(&all, n, false).is_some()));
    }
}
