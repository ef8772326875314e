//! Counters for `GET /metrics` (Prometheus text format).
//!
//! Everything is a fixed array of atomics, so recording costs a few
//! uncontended atomic adds and no lock on the request path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The routes requests are counted under (a fixed set keeps labels bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Session,
    Myself,
    User,
    ServerInfo,
    Healthz,
    Metrics,
    Admin,
    Pages,
    Proxy,
    Verify,
    OwnSessions,
    Tokens,
    Other,
}

impl Route {
    const ALL: [Route; 13] = [
        Route::Session,
        Route::Myself,
        Route::User,
        Route::ServerInfo,
        Route::Healthz,
        Route::Metrics,
        Route::Admin,
        Route::Pages,
        Route::Proxy,
        Route::Verify,
        Route::OwnSessions,
        Route::Tokens,
        Route::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Route::Session => "session",
            Route::Myself => "myself",
            Route::User => "user",
            Route::ServerInfo => "serverinfo",
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
            Route::Admin => "admin",
            Route::Pages => "pages",
            Route::Proxy => "proxy",
            Route::Verify => "verify",
            Route::OwnSessions => "sessions",
            Route::Tokens => "tokens",
            Route::Other => "other",
        }
    }
}

const STATUSES: [u16; 22] = [
    200, 201, 204, 301, 302, 303, 304, 400, 401, 403, 404, 405, 409, 413, 415, 429, 431, 500, 502, 503, 504,
    0,
];
const BUCKETS: [f64; 13] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Login outcomes.
#[derive(Clone, Copy, Debug)]
pub enum LoginOutcome {
    Ok,
    Failed,
    Denied,
}

/// All of authd's counters.
pub struct Metrics {
    requests: Vec<AtomicU64>, // Route::ALL × STATUSES
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    logins: [AtomicU64; 3],
    sweeps: AtomicU64,
    swept: [AtomicU64; 4],
    sweep_micros_total: AtomicU64,
    sweep_micros_last: AtomicU64,
}

/// The record kinds the sweeper deletes, in `Metrics::swept` order.
const SWEPT_KINDS: [&str; 4] = ["session", "remember_me_series", "lockout", "verification_token"];

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: (0..Route::ALL.len() * STATUSES.len()).map(|_| AtomicU64::new(0)).collect(),
            latency_buckets: Default::default(),
            latency_count: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            logins: Default::default(),
            sweeps: AtomicU64::new(0),
            swept: Default::default(),
            sweep_micros_total: AtomicU64::new(0),
            sweep_micros_last: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: Route, status: u16, took: Duration) {
        let r = Route::ALL.iter().position(|&x| x == route).unwrap_or(Route::ALL.len() - 1);
        let s = STATUSES.iter().position(|&x| x == status).unwrap_or(STATUSES.len() - 1);
        if let Some(c) = self.requests.get(r * STATUSES.len() + s) {
            c.fetch_add(1, Relaxed);
        }
        // One counter per bucket (not cumulative): a single atomic add per
        // request; `render` sums them into Prometheus's cumulative form.
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| secs <= *bound) {
            if let Some(c) = self.latency_buckets.get(i) {
                c.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Counts a login attempt.
    pub fn login(&self, outcome: LoginOutcome) {
        let i = match outcome {
            LoginOutcome::Ok => 0,
            LoginOutcome::Failed => 1,
            LoginOutcome::Denied => 2,
        };
        if let Some(c) = self.logins.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts a sweeper run, what it deleted and how long it took.
    pub fn swept(&self, r: &crate::store::SweepReport, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sweep_micros_total.fetch_add(micros, Relaxed);
        self.sweep_micros_last.store(micros, Relaxed);
        self.sweeps.fetch_add(1, Relaxed);
        for (counter, n) in self.swept.iter().zip([r.sessions, r.series, r.lockouts, r.verifications]) {
            counter.fetch_add(n, Relaxed);
        }
    }

    /// Requests answered so far.
    pub fn requests_answered(&self) -> u64 {
        self.latency_count.load(Relaxed)
    }

    /// Sweeper runs so far.
    pub fn sweeps(&self) -> u64 {
        self.sweeps.load(Relaxed)
    }

    /// The Prometheus text exposition; `sessions` is the current session count.
    pub fn render(&self, sessions: u64) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail; the results are ignored.
        let _ =
            writeln!(out, "# HELP authd_http_requests_total HTTP requests answered, by route and status.");
        let _ = writeln!(out, "# TYPE authd_http_requests_total counter");
        for (ri, route) in Route::ALL.iter().enumerate() {
            for (si, status) in STATUSES.iter().enumerate() {
                let n = self.requests.get(ri * STATUSES.len() + si).map_or(0, |c| c.load(Relaxed));
                if n > 0 {
                    let status = if *status == 0 { "other".to_string() } else { status.to_string() };
                    let _ = writeln!(
                        out,
                        "authd_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                        route.label()
                    );
                }
            }
        }
        let _ = writeln!(out, "# HELP authd_http_request_duration_seconds Time to answer a request.");
        let _ = writeln!(out, "# TYPE authd_http_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Relaxed);
            let _ =
                writeln!(out, "authd_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "authd_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.latency_sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "authd_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "authd_http_request_duration_seconds_count {count}");
        let _ = writeln!(out, "# HELP authd_logins_total Login attempts by outcome.");
        let _ = writeln!(out, "# TYPE authd_logins_total counter");
        for (i, label) in ["ok", "failed", "denied"].iter().enumerate() {
            let n = self.logins.get(i).map_or(0, |c| c.load(Relaxed));
            let _ = writeln!(out, "authd_logins_total{{outcome=\"{label}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP authd_sessions Sessions stored (live, or expired and not yet swept).");
        let _ = writeln!(out, "# TYPE authd_sessions gauge");
        let _ = writeln!(out, "authd_sessions {sessions}");
        let _ = writeln!(out, "# HELP authd_sweeper_runs_total Sweeper runs.");
        let _ = writeln!(out, "# TYPE authd_sweeper_runs_total counter");
        let _ = writeln!(out, "authd_sweeper_runs_total {}", self.sweeps.load(Relaxed));
        let _ = writeln!(out, "# HELP authd_sweeper_duration_seconds_total Time spent sweeping.");
        let _ = writeln!(out, "# TYPE authd_sweeper_duration_seconds_total counter");
        let total = self.sweep_micros_total.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "authd_sweeper_duration_seconds_total {total}");
        let _ = writeln!(out, "# HELP authd_sweeper_last_duration_seconds How long the latest sweep took.");
        let _ = writeln!(out, "# TYPE authd_sweeper_last_duration_seconds gauge");
        let last = self.sweep_micros_last.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "authd_sweeper_last_duration_seconds {last}");
        let _ = writeln!(out, "# HELP authd_sweeper_deleted_total Records the sweeper deleted, by kind.");
        let _ = writeln!(out, "# TYPE authd_sweeper_deleted_total counter");
        for (kind, counter) in SWEPT_KINDS.iter().zip(&self.swept) {
            let _ = writeln!(out, "authd_sweeper_deleted_total{{kind=\"{kind}\"}} {}", counter.load(Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.request(Route::Session, 200, Duration::from_micros(300));
        m.request(Route::Session, 200, Duration::from_millis(30));
        m.request(Route::Session, 418, Duration::from_millis(3));
        m.login(LoginOutcome::Failed);
        m.swept(
            &crate::store::SweepReport { sessions: 5, series: 1, ..Default::default() },
            Duration::from_millis(1500),
        );
        let text = m.render(7);
        assert!(text.contains("authd_http_requests_total{route=\"session\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("authd_http_requests_total{route=\"session\",status=\"other\"} 1"));
        assert!(text.contains("authd_http_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("authd_http_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("authd_http_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("authd_logins_total{outcome=\"failed\"} 1"));
        assert!(text.contains("authd_sessions 7"));
        assert!(text.contains("authd_sweeper_deleted_total{kind=\"session\"} 5"));
        assert!(text.contains("authd_sweeper_deleted_total{kind=\"remember_me_series\"} 1"));
        assert!(text.contains("authd_sweeper_last_duration_seconds 1.5"));
    }
}
