//! The simulator's options (`spot-connect sim --…`, `sim::start`): clap arguments the CLI embeds.

use clap::Args;

/// The default page of `GET /subscriptions`: ARM's own (a guess: docs/simulator.md).
pub const SUBSCRIPTION_PAGE_SIZE: usize = 100;

#[derive(Debug, Clone, Args)]
pub struct SimOpts {
    /// Address to listen on; port 0 takes a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Latency added to every call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency: u64,
    /// Probability of an injected fault per call (429, 500, 503, dropped connection).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Seconds during which a new object is not yet visible where Azure is slow to propagate it.
    #[arg(long, default_value_t = 0.0)]
    pub replication_delay: f64,
    /// Seed for the fault sequence and generated ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// ARM's write (and delete) budget: a bucket of N refilled at N per second, per tenant and
    /// per subscription (overrides --arm-write-bucket/--arm-write-refill).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// ARM's read bucket (per tenant; per subscription and principal), in requests.
    #[arg(long, default_value_t = 250)]
    pub arm_read_bucket: u32,
    /// ARM's read refill, requests per second.
    #[arg(long, default_value_t = 25.0)]
    pub arm_read_refill: f64,
    /// ARM's write bucket, and its delete bucket (per tenant; per subscription and principal).
    #[arg(long, default_value_t = 200)]
    pub arm_write_bucket: u32,
    /// ARM's write (and delete) refill, requests per second.
    #[arg(long, default_value_t = 10.0)]
    pub arm_write_refill: f64,
    /// Seconds before a role assignment at a management group takes effect below it (Spot's
    /// validation, ARM's listing at a subscription): Azure's are slower than at a subscription
    /// (reference/fleet-and-policies.md §1). At least --replication-delay.
    #[arg(long, default_value_t = 0.0)]
    pub mg_propagation_delay: f64,
    /// Extra subscriptions to seed in the first tenant (bulk tests).
    // Own clap id: the global `--subscription` list already uses the id `subscriptions`.
    #[arg(long = "subscriptions", id = "sim_subscriptions", default_value_t = 0)]
    pub subscriptions: u32,
    /// Subscriptions per page of `GET /subscriptions` (then a `nextLink`).
    #[arg(long, default_value_t = SUBSCRIPTION_PAGE_SIZE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub subscription_page_size: usize,
    /// Milliseconds after which a device code is approved (as the seeded operator user).
    #[arg(long, default_value_t = 1500)]
    pub approve_after: u64,
    /// Polling interval, in seconds, the device-code response asks for (polling faster gets slow_down).
    #[arg(long, default_value_t = 1)]
    pub device_interval: u64,
    /// Lifetime of issued access tokens, in seconds (`expires_in`).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_lifetime: u64,
    /// Conditional Access blocks the device-code flow in this tenant (id, domain, or `all`):
    /// the token endpoint answers the device-code grant with AADSTS53003. Repeatable.
    #[arg(long, value_name = "TENANT|all")]
    pub block_device_code: Vec<String>,
    /// This tenant (id, domain, or `all`) wants an interactive sign-in: a refresh-token grant for
    /// it answers interaction_required (AADSTS50076) until the user signs in to it. Repeatable.
    #[arg(long, value_name = "TENANT")]
    pub require_interaction: Vec<String>,
    /// With --require-interaction: the refusal carries a `claims` challenge.
    #[arg(long)]
    pub interaction_claims: bool,
    /// Lifetime of authorization codes from `/authorize`, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub auth_code_lifetime: u64,
    /// The tenant's default app management policy restricts client secrets of every app:
    /// `TENANT=P90D` (passwordLifetime: at most that ISO 8601 duration) or `TENANT=block`
    /// (passwordAddition: no new secret). TENANT is an id or domain. Repeatable.
    #[arg(long, value_name = "TENANT=P90D|block", value_parser = tenant_policy)]
    pub secret_lifetime_policy: Vec<(String, String)>,
}

/// `TENANT=VALUE` of --secret-lifetime-policy (the value is checked when the tenant is known).
fn tenant_policy(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((t, v)) if !t.trim().is_empty() && !v.trim().is_empty() => {
            Ok((t.trim().to_string(), v.trim().to_string()))
        }
        _ => Err(format!(
            "`{s}`: expected TENANT=P90D (an ISO 8601 duration) or TENANT=block"
        )),
    }
}

impl Default for SimOpts {
    fn default() -> Self {
        SimOpts {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            latency: 0,
            fault_rate: 0.0,
            replication_delay: 0.0,
            seed: 1,
            rate_limit: None,
            arm_read_bucket: 250,
            arm_read_refill: 25.0,
            arm_write_bucket: 200,
            arm_write_refill: 10.0,
            mg_propagation_delay: 0.0,
            subscriptions: 0,
            subscription_page_size: SUBSCRIPTION_PAGE_SIZE,
            approve_after: 1500,
            device_interval: 1,
            token_lifetime: 3600,
            block_device_code: vec![],
            require_interaction: vec![],
            interaction_claims: false,
            auth_code_lifetime: 600,
            secret_lifetime_policy: vec![],
        }
    }
}
