//! `--fault-rate P --seed N`: deterministic injected faults. Whether call number `seq` fails, and
//! how, depends only on the seed and `seq` (the order of calls), never on the clock.

use super::state::mix;
use super::{Ctx, Resp};
use crate::cli::SimOpts;

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
        match self {
            Fault::Throttle => s
                .error(ctx, 429, "TooManyRequests", "The request is being throttled. Retry after the time in the Retry-After header.")
                .header("retry-after", "1"),
            Fault::Unavailable => s
                .error(ctx, 503, "ServiceUnavailable", "The service is temporarily unavailable. Please retry.")
                .header("retry-after", "1"),
            _ => s.error(ctx, 500, "InternalServerError", "An internal server error occurred. Please retry the request."),
        }
    }
}

fn is_role_assignment_put(ctx: &Ctx) -> bool {
    ctx.method == axum::http::Method::PUT
        && ctx
            .path
            .to_ascii_lowercase()
            .contains("/providers/microsoft.authorization/roleassignments/")
}

/// The fault for call number `seq`, if any.
pub(crate) fn pick(opts: &SimOpts, seq: u64, ctx: &Ctx) -> Option<Fault> {
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
    if is_role_assignment_put(ctx) {
        kinds.push(Fault::PrincipalNotFound);
    }
    Some(kinds[(mix(h) % kinds.len() as u64) as usize])
}
